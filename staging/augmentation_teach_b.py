

# ----------------------------------------------------------------------------
# 06, an augmentation pipeline that keeps a box label valid
# ----------------------------------------------------------------------------

def _object_image(seed: int, height: int, width: int, channels: int) -> tuple[torch.Tensor, list[int]]:
    """A dark image with one bright, left-right asymmetric object (an 'L' with a dot) at least 5 px
    from every edge; returns (image (C, H, W), box [x0, y0, x1, y1]), x1 and y1 exclusive."""
    rng = random.Random(seed)
    h, w = rng.randint(6, min(12, height - 10)), rng.randint(6, min(12, width - 10))
    y0, x0 = rng.randint(5, height - 5 - h), rng.randint(5, width - 5 - w)
    image = torch.zeros(channels, height, width)
    image[:, y0:y0 + h, x0:x0 + 2] = 1.0                     # the upright bar of the L, on the left
    image[:, y0 + h - 2:y0 + h, x0:x0 + w] = 1.0             # its foot
    image[:, y0, x0 + w - 1] = 1.0                           # a dot at the top right
    return image, [x0, y0, x0 + w, y0 + h]


def _bright_box(image: torch.Tensor) -> list[int] | None:
    """[x0, y0, x1, y1] (exclusive) around the pixels brighter than 0.5 in any channel, or None."""
    mask = (image > 0.5).any(dim=0)
    if not mask.any():
        return None
    rows, cols = mask.any(dim=1).nonzero().flatten(), mask.any(dim=0).nonzero().flatten()
    return [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]


@register
class AugmentWithBox(Check):
    """fn(image (C, H, W), box [x0, y0, x1, y1]) -> (image, box): a random left-right flip and a shift of
    at most 4 px, the box moved with the object; judged over 24 draws per image."""
    name, default_n, returns = "augment_with_box", 6, "a pair (image, box)"
    draws = 24
    hint = ("after your transform, box must still be the box around the object in the new image: move it with "
            "every pixel (a flip mirrors x, a shift adds dx and dy); only left-right flips are allowed here")
    formula = ("if torch.rand(()) < 0.5: image = image.flip(-1); x0, x1 = W - x1, W - x0\n"
               "dx, dy = torch.randint(-4, 5, (2,)).tolist()\n"
               "out = torch.zeros_like(image); out[:, max(dy,0):H+min(dy,0), max(dx,0):W+min(dx,0)] = "
               "image[:, max(-dy,0):H-max(dy,0), max(-dx,0):W-max(dx,0)]\n"
               "return out, [x0 + dx, y0 + dy, x1 + dx, y1 + dy]")

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [dict(seed=1, height=32, width=32, channels=3), dict(seed=2, height=28, width=40, channels=1)]
        rand = [dict(seed=seed * 100 + i, height=rng.randint(26, 40), width=rng.randint(26, 40),
                     channels=rng.choice([1, 3])) for i in range(max(0, n - len(fixed)))]
        cases = []
        for spec in (fixed + rand)[:n]:
            image, box = _object_image(spec["seed"], spec["height"], spec["width"], spec["channels"])
            cases.append(dict(spec, image=image, box=box))
        return cases

    def run(self, answer, case):
        results = []
        with seeded(case["seed"]):
            for _ in range(self.draws):
                out = answer(case["image"].clone(), list(case["box"]))
                if not isinstance(out, (tuple, list)) or len(out) != 2:
                    return out
                image, box = out
                if isinstance(box, torch.Tensor):
                    box = box.tolist()
                if isinstance(box, (list, tuple)):
                    box = [int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in box]
                results.append([image, box])
        return results

    def reference(self, case):
        x0, y0, x1, y1 = case["box"]
        crop = case["image"][:, y0:y1, x0:x1]
        return {"crop": crop, "mirrored": crop.flip(-1)}

    def compare(self, got, want, case):
        if type(got) is not list:
            return Failure(f"expected {self.returns}, got {describe_type(got)}",
                           "did you forget `return image, box`?" if got is None else "return a pair: (image, box)")
        shape, flips, positions = tuple(case["image"].shape), set(), set()
        for i, (image, box) in enumerate(got, start=1):
            if type(image) is not torch.Tensor or tuple(image.shape) != shape:
                return Failure(f"draw {i}: expected an image tensor of shape {shape}, got {describe_type(image)}",
                               "keep the image size: shift with zero fill inside the same frame, do not crop")
            if type(box) is not list or len(box) != 4 or not all(type(v) is int for v in box):
                return Failure(f"draw {i}: expected a box of 4 ints [x0, y0, x1, y1], got {describe(box)}",
                               "return the box as a list of four ints")
            actual = _bright_box(image)
            if actual != box:
                return Failure(f"draw {i}: the box says {box} but the object in the returned image is at {actual} "
                               f"(input box {case['box']})", self.hint)
            x0, y0, x1, y1 = box
            crop = image[:, y0:y1, x0:x1]
            if crop.shape == want["crop"].shape and torch.allclose(crop, want["crop"]):
                flips.add(False)
            elif crop.shape == want["mirrored"].shape and torch.allclose(crop, want["mirrored"]):
                flips.add(True)
            else:
                return Failure(f"draw {i}: the object is no longer itself or its left-right mirror image "
                               "(turned upside down, rotated or rescaled?)",
                               "for this task only left-right flips and shifts keep the label valid")
            positions.add((x0, y0))
        if flips != {False, True}:
            return Failure(f"in {len(got)} draws the object was {'always' if True in flips else 'never'} mirrored",
                           "flip with probability 0.5, drawing anew on every call")
        if len(positions) < 3:
            return Failure(f"in {len(got)} draws the object took only {len(positions)} position(s)",
                           "shift by a new random (dx, dy) in [-4, 4] on every call")
        return None
