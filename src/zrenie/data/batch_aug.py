"""Whole-batch augmentation on the device for in-memory datasets.

One call augments a whole batch with tensor ops, instead of a Python transform per sample: on a
small CNN the per-sample path spends more time in the DataLoader than in the model. Random numbers
come from an explicit generator so that a batch's augmentation depends only on (seed, epoch, batch).

Every op takes images `Tensor[B, C, H, W]` or video clips `Tensor[B, T, C, H, W]`; a clip gets one
crop, one flip and one cutout for all its frames. `BatchAugment.joint` moves segmentation masks
and detection boxes with the image. Boxes are XYXY in absolute pixel edges, the convention of
`zrenie.data.builtin.shapes`, under which a flip or crop of a box equals that of its mask.
"""

from __future__ import annotations

import torch
from torch import Tensor

MASK_IGNORE = 255  # the mask value of pixels without a label (padding), which losses skip


def crop_offsets(batch: int, padding: int, generator: torch.Generator,
                 device: torch.device) -> tuple[Tensor, Tensor]:
    """Draws a crop offset per sample in the padded image, columns first then rows.

    Returns:
        (dx, dy): Tensor[B] each, in [0, 2 * padding], on `device`.
    """
    dx = torch.randint(0, 2 * padding + 1, (batch,), generator=generator, device=generator.device).to(device)
    dy = torch.randint(0, 2 * padding + 1, (batch,), generator=generator, device=generator.device).to(device)
    return dx, dy


def _source_index(size: int, offset: Tensor, padding: int, reflect: bool) -> tuple[Tensor, Tensor]:
    """Index into the unpadded axis of each output position, and whether it falls inside it.

    Reading the source through a reflected index equals `F.pad(mode="reflect")` followed by a
    slice (both copy values, so the result is bit-identical) and works for any dtype, integer
    masks included, without materialising the padded batch.

    Returns:
        (index, inside): Tensor[B, size] each; index is clamped into the axis when not `reflect`.
    """
    index = torch.arange(size, device=offset.device)[None] + (offset[:, None] - padding)  # (B, size)
    inside = (index >= 0) & (index < size)
    if reflect:  # -1 -> 1 and size -> size - 2: the edge pixel is not repeated
        index = index.abs()
        index = torch.where(index > size - 1, 2 * (size - 1) - index, index)
    else:
        index = index.clamp(0, size - 1)
    return index, inside


def crop_at(x: Tensor, padding: int, dx: Tensor, dy: Tensor, fill: float | None = None) -> Tensor:
    """Pads by `padding` on each side and crops back to (H, W) at the given offsets per sample.

    Args:
        x: Tensor[B, ..., H, W]: images (B, C, H, W), clips (B, T, C, H, W) or masks (B, H, W).
        padding: pixels added on each side before cropping.
        dx: Tensor[B] column offsets into the padded sample, in [0, 2 * padding].
        dy: Tensor[B] row offsets, likewise.
        fill: value of the padding; None reflects the sample at its edges, like `F.pad`'s
            "reflect" (which needs padding < H and W).

    Returns:
        Tensor of the shape and dtype of `x`.
    """
    b, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    if fill is None and padding >= min(h, w):
        raise ValueError(f"reflect padding {padding} must be smaller than the image side {min(h, w)}")
    rows, rows_inside = _source_index(h, dy, padding, reflect=fill is None)  # (B, H)
    cols, cols_inside = _source_index(w, dx, padding, reflect=fill is None)  # (B, W)
    flat = x.reshape(b, -1, h, w)  # (B, N, H, W) with N = C, T * C or 1
    n = flat.shape[1]
    out = flat.gather(2, rows[:, None, :, None].expand(b, n, h, w))
    out = out.gather(3, cols[:, None, None, :].expand(b, n, h, w))
    if fill is not None:
        outside = ~(rows_inside[:, :, None] & cols_inside[:, None, :])  # (B, H, W)
        out = out.masked_fill(outside[:, None], fill)
    return out.reshape(x.shape)


def crop_boxes(boxes: list[Tensor], padding: int, dx: Tensor, dy: Tensor,
               canvas_size: tuple[int, int]) -> list[tuple[Tensor, Tensor]]:
    """Moves boxes with `crop_at`, clips them to the crop and drops those under 1 pixel wide or high.

    The drop rule is that of torchvision's `SanitizeBoundingBoxes(min_size=1)`: after clipping, a
    box keeps width >= 1 and height >= 1 or goes.

    Args:
        boxes: B tensors Tensor[k_i, 4] float (x1, y1, x2, y2) in absolute pixel edges.
        padding: as given to `crop_at`.
        dx: Tensor[B] column offsets, as given to `crop_at`.
        dy: Tensor[B] row offsets.
        canvas_size: (H, W) of the image before and after the crop.

    Returns:
        B pairs (Tensor[k'_i, 4] surviving boxes, Tensor[k_i] bool which input boxes survived),
        on the device of `boxes`.
    """
    if not boxes:
        return []
    h, w = canvas_size
    flat = torch.cat([b.reshape(-1, 4) for b in boxes])  # (sum k_i, 4)
    counts = torch.tensor([len(b) for b in boxes], device=flat.device)
    # A crop at offset d of the padded image starts at d - padding in the original one.
    offsets = torch.stack([dx, dy, dx, dy], dim=1).to(flat.device)  # (B, 4)
    shift = offsets.sub(padding).repeat_interleave(counts, dim=0)  # (sum k_i, 4)
    moved = flat - shift.to(flat.dtype)
    moved[:, 0::2] = moved[:, 0::2].clamp(0, w)
    moved[:, 1::2] = moved[:, 1::2].clamp(0, h)
    keep = ((moved[:, 2] - moved[:, 0]) >= 1) & ((moved[:, 3] - moved[:, 1]) >= 1)
    sizes = counts.tolist()
    return [(m[k], k) for m, k in zip(moved.split(sizes), keep.split(sizes))]


def per_instance(op, masks: list[Tensor], per_sample: tuple[Tensor, ...], *args, **kwargs) -> list[Tensor]:
    """Applies a batch op to instance masks, each sample's draws repeated for each of its objects.

    Args:
        op: `crop_at`-like, taking `(x, *args, *per_sample_values, **kwargs)`; its first argument is
            Tensor[sum k_i, H, W].
        masks: B tensors Tensor[k_i, H, W] (any dtype), one mask per object of a sample.
        per_sample: the op's Tensor[B] arguments (crop offsets, flip flags), one value per sample.
    """
    counts = torch.tensor([len(m) for m in masks])
    if not masks or int(counts.sum()) == 0:
        return list(masks)
    flat = torch.cat(masks)
    repeated = [v.to(flat.device).repeat_interleave(counts.to(flat.device)) for v in per_sample]
    return list(op(flat, *args, *repeated, **kwargs).split(counts.tolist()))


def random_crop(images: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Pads by `padding` (reflect) and crops back to the original size at a random offset per sample.

    Args:
        images: Tensor[B, C, H, W], or clips Tensor[B, T, C, H, W] (one offset per clip).
    """
    if padding <= 0:
        return images
    dx, dy = crop_offsets(len(images), padding, generator, images.device)
    return crop_at(images, padding, dx, dy)


def flip_draws(batch: int, generator: torch.Generator, device: torch.device, p: float = 0.5) -> Tensor:
    """Tensor[B] bool: which samples to flip, each with probability `p`."""
    return torch.rand(batch, generator=generator, device=generator.device).to(device) < p


def hflip_where(x: Tensor, flip: Tensor) -> Tensor:
    """Mirrors the last axis of the samples where `flip` (Tensor[B] bool) is set.

    Args:
        x: Tensor[B, ..., H, W]: images, clips or masks.
    """
    return torch.where(flip.view(-1, *[1] * (x.ndim - 1)), x.flip(-1), x)


def hflip_boxes(boxes: list[Tensor], flip: Tensor, width: int) -> list[Tensor]:
    """Mirrors the boxes of the samples where `flip` is set: x1' = W - x2, x2' = W - x1.

    Args:
        boxes: B tensors Tensor[k_i, 4] (x1, y1, x2, y2) in absolute pixel edges.
        flip: Tensor[B] bool.
        width: image width W.
    """
    out = []
    for b, f in zip(boxes, flip.tolist()):
        out.append(torch.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], dim=1) if f else b)
    return out


def random_hflip(images: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Mirrors each sample left-right with probability `p`; a clip's frames flip together.

    Args:
        images: Tensor[B, C, H, W] or clips Tensor[B, T, C, H, W].
    """
    return hflip_where(images, flip_draws(len(images), generator, images.device, p))


def cutout(images: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Zeroes one `size` x `size` square per sample at a random centre (DeVries & Taylor 2017).

    Args:
        images: Tensor[B, C, H, W] or clips Tensor[B, T, C, H, W] (the same square in every frame).
    """
    if size <= 0:
        return images
    b, h, w = images.shape[0], images.shape[-2], images.shape[-1]
    cy = torch.randint(0, h, (b,), generator=generator, device=generator.device).to(images.device)
    cx = torch.randint(0, w, (b,), generator=generator, device=generator.device).to(images.device)
    ys = torch.arange(h, device=images.device)[None, :]
    xs = torch.arange(w, device=images.device)[None, :]
    inside_y = (ys >= (cy - size // 2)[:, None]) & (ys < (cy - size // 2 + size)[:, None])  # (B, H)
    inside_x = (xs >= (cx - size // 2)[:, None]) & (xs < (cx - size // 2 + size)[:, None])  # (B, W)
    mask = inside_y[:, :, None] & inside_x[:, None, :]  # (B, H, W)
    return images.masked_fill(mask.view(b, *[1] * (images.ndim - 3), h, w), 0.0)


def trivial_augment(images: Tensor, chunk: int = 8, colour_only: bool = False) -> Tensor:
    """TrivialAugment (Muller & Hutter 2021) on a float batch: one random op and strength per chunk.

    torchvision's v2 op draws one op for the whole tensor it is given; chunks of `chunk` samples
    keep the per-image variety close while the work stays batched (a clip's frames share the op).
    Ops run on uint8, where every op of its table is defined. Randomness comes from torch's global
    generator (checkpointed).

    Args:
        images: Tensor[B, C, H, W] or clips Tensor[B, T, C, H, W], float in [0, 1].
        chunk: samples per draw of the op.
        colour_only: leave out the shear, translate and rotate ops, for batches whose masks or
            boxes would no longer line up with the moved pixels.
    """
    from torchvision.transforms import v2

    from zrenie.data.transforms import ColourTrivialAugment

    op = ColourTrivialAugment() if colour_only else v2.TrivialAugmentWide()
    as_uint8 = images.clamp(0, 1).mul(255).round().to(torch.uint8)
    out = torch.cat([op(part) for part in as_uint8.split(chunk)])
    return out.float().div_(255)


def mosaic(images: Tensor, targets: list[dict], generator: torch.Generator, p: float) -> tuple[Tensor, list[dict]]:
    """YOLOv4's mosaic: with probability `p` a sample becomes four images of the batch tiled around a random
    centre, each resized into its quadrant, their boxes and labels with them.

    The centre is drawn in the middle half of the side; the sample itself fills the top-left quadrant and
    three others of the batch (drawn at random, repeats allowed) the rest. Boxes are scaled and moved with
    their image; one left under 1 pixel wide or high is dropped.

    Args:
        images: Tensor[B, C, H, W] float.
        targets: B dicts {"boxes": Tensor[k, 4] XYXY absolute pixel edges, "labels": Tensor[k]}, optionally
            "masks" Tensor[k, H, W] instance masks, resized with their image (nearest), and other per-object
            values (Tensor[k]: "iscrowd" ...), kept with their boxes.
        generator: the source of every random number (drawn whatever `p`, so `p` changes no other draw order).
        p: probability that a sample is a mosaic, in [0, 1].

    Returns:
        (images, targets) of the same sizes; samples not drawn are returned as they were.
    """
    import torch.nn.functional as F

    b, _, h, w = images.shape
    device = generator.device
    chosen = (torch.rand(b, generator=generator, device=device) < p).tolist()
    partners = torch.randint(0, b, (b, 3), generator=generator, device=device).tolist()
    centres = (0.25 + 0.5 * torch.rand(b, 2, generator=generator, device=device)).tolist()
    out, new_targets = images.clone(), list(targets)
    for i in range(b):
        if not chosen[i]:
            continue
        cx, cy = max(1, min(w - 1, round(centres[i][0] * w))), max(1, min(h - 1, round(centres[i][1] * h)))
        quadrants = [(0, 0, cx, cy), (cx, 0, w, cy), (0, cy, cx, h), (cx, cy, w, h)]
        parts: dict[str, list[Tensor]] = {key: [] for key in targets[i]}
        for src, (x0, y0, x1, y1) in zip([i, *partners[i]], quadrants):
            out[i, :, y0:y1, x0:x1] = F.interpolate(images[src:src + 1], size=(y1 - y0, x1 - x0), mode="bilinear",
                                                    align_corners=False, antialias=True)[0]
            scale = torch.tensor([(x1 - x0) / w, (y1 - y0) / h] * 2, device=images.device)
            moved = targets[src]["boxes"].float() * scale + torch.tensor([x0, y0, x0, y0], device=images.device)
            keep = ((moved[:, 2] - moved[:, 0]) >= 1) & ((moved[:, 3] - moved[:, 1]) >= 1)
            for key, values in parts.items():  # boxes moved, masks resized, per-object values (labels...) kept
                value = moved if key == "boxes" else targets[src][key].as_subclass(Tensor)
                value = value[keep.to(value.device)]
                values.append(_mask_into(value, (x0, y0, x1, y1), (h, w)) if key == "masks" else value)
        new_targets[i] = {key: torch.cat(values) for key, values in parts.items()}
    return out, new_targets


def _mask_into(masks: Tensor, box: tuple[int, int, int, int], canvas: tuple[int, int]) -> Tensor:
    """Instance masks Tensor[k, H, W] resized (nearest) into `box` (x0, y0, x1, y1) of an empty canvas."""
    import torch.nn.functional as F

    x0, y0, x1, y1 = box
    out = torch.zeros((len(masks), *canvas), dtype=masks.dtype, device=masks.device)
    if len(masks):
        resized = F.interpolate(masks[:, None].float(), size=(y1 - y0, x1 - x0), mode="nearest")[:, 0]
        out[:, y0:y1, x0:x1] = resized.to(masks.dtype)
    return out


class BatchAugment:
    """A preset of batch ops: `none`, `light` (crop), `standard` (crop, flip where allowed, cutout),
    `strong` (standard with TrivialAugment before the cutout; MixUp/CutMix are applied by the step).

    Padding is 1/8 of the image side and the cutout 1/4 of it (4 and 8 pixels at 32x32, the
    values of the CIFAR baselines these presets follow).

    Args:
        preset: one of "none", "light", "standard", "strong".
        image_size: side of the (square) images.
        hflip: whether a horizontal flip keeps the label.
        mask_fill: mask value of the padding that a crop brings in when boxes are given.
        mosaic: probability that a detection sample is a 2x2 mosaic (`mosaic`), applied by the loader
            before the preset's ops.
    """

    def __init__(self, preset: str, image_size: int, hflip: bool, mask_fill: int = MASK_IGNORE,
                 mosaic: float = 0.0):
        self.preset, self.mosaic = preset, mosaic
        self.padding = max(1, image_size // 8)
        self.cutout = max(1, image_size // 4)
        self.hflip = hflip
        self.mask_fill = mask_fill

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """Augments images alone (classification).

        Args:
            images: Tensor[B, C, H, W] or clips Tensor[B, T, C, H, W], float.
            generator: the source of every random number except TrivialAugment's.
        """
        return self.joint(images, generator)[0]

    def joint(self, images: Tensor, generator: torch.Generator, masks: Tensor | None = None,
              boxes: list[Tensor] | None = None
              ) -> tuple[Tensor, Tensor | None, list[tuple[Tensor, Tensor]] | None]:
        """Augments images and moves their masks and boxes with them.

        The random numbers are drawn in the same order whatever the targets, so an image-only
        call is exactly `__call__`. Crop and flip move the targets; cutout occludes the object
        without removing it and TrivialAugment is photometric, so both leave the targets alone.
        With targets, TrivialAugment keeps to its colour ops: its shear, translate (up to 32
        pixels) and rotate (up to 135 degrees) would move pixels away from their labels.

        The crop pads by reflection without boxes, and masks are reflected the same way so that
        they keep labelling the mirrored pixels. With boxes it pads with zeros (masks with
        `mask_fill`, instance masks with 0): a reflection would show mirrored objects that have no box.

        Args:
            images: Tensor[B, C, H, W] or clips Tensor[B, T, C, H, W], float.
            generator: the source of every random number except TrivialAugment's.
            masks: Tensor[B, H, W] (Tensor[B, T, H, W] for clips) integer class map; or, with boxes,
                B tensors Tensor[k_i, H, W] of instance masks, one per box (returned in the same form,
                unfiltered: index them with the returned `keep` as the labels); or None.
            boxes: B tensors Tensor[k_i, 4] float (x1, y1, x2, y2) in absolute pixel edges, one
                set per sample (per clip), or None.

        Returns:
            (images, masks, boxes); masks is None when none were given. boxes is None when none
            were given, else B pairs (Tensor[k'_i, 4] boxes that survived the crop, Tensor[k_i]
            bool marking which input boxes they are), so that the caller can filter its labels
            with `labels[keep]`. A box survives when at least 1 pixel of width and height stays.
        """
        b, h, w = images.shape[0], images.shape[-2], images.shape[-1]
        instances = isinstance(masks, (list, tuple))
        if instances and (len(masks) != b or any(m.shape[-2:] != (h, w) for m in masks)):
            raise ValueError(f"{len(masks)} instance mask sets do not match images {tuple(images.shape)}")
        if masks is not None and not instances and (masks.shape[0] != b or masks.shape[-2:] != (h, w)):
            raise ValueError(f"masks of shape {tuple(masks.shape)} do not match images {tuple(images.shape)}")
        if boxes is not None and len(boxes) != b:
            raise ValueError(f"{len(boxes)} box sets for a batch of {b}")
        keep = None if boxes is None else [torch.ones(len(x), dtype=torch.bool, device=x.device) for x in boxes]
        if self.preset != "none":
            dx, dy = crop_offsets(b, self.padding, generator, images.device)
            images = crop_at(images, self.padding, dx, dy, fill=None if boxes is None else 0.0)
            if instances:
                masks = per_instance(crop_at, masks, (dx, dy), self.padding, fill=0)
            elif masks is not None:
                masks = crop_at(masks, self.padding, dx, dy, fill=None if boxes is None else self.mask_fill)
            if boxes is not None:
                cropped = crop_boxes(boxes, self.padding, dx, dy, (h, w))
                boxes, keep = [kept for kept, _ in cropped], [k for _, k in cropped]
            if self.hflip:
                flip = flip_draws(b, generator, images.device)
                images = hflip_where(images, flip)
                masks = (per_instance(hflip_where, masks, (flip,)) if instances
                         else None if masks is None else hflip_where(masks, flip))
                boxes = None if boxes is None else hflip_boxes(boxes, flip, w)
            if self.preset in ("standard", "strong"):
                if self.preset == "strong":
                    images = trivial_augment(images, colour_only=masks is not None or boxes is not None)
                images = cutout(images, self.cutout, generator)
        return images, masks, None if boxes is None else list(zip(boxes, keep))
