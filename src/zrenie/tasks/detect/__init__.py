"""Object detection: localisation, CenterNet, SSD, YOLO and torchvision's detectors on the zrenie engine."""
