"""cnnkit.conv against PyTorch's own test inputs (OpInfo) for conv2d, max_pool2d and avg_pool2d.

For every `sample_inputs` entry of the three ops (float64, requires_grad=True) the values,
the indices (max_pool2d with return_indices) and the gradients of every differentiable
input must equal torch's; every `error_inputs` entry must be rejected with ValueError,
TypeError or NotImplementedError.

`torch.testing._internal` is private: this file was checked on torch==2.14.1 (see the
assert below). If the import moves in a later torch, the test FAILS (it never skips);
update the import, rerun, and record the new version here.
"""

import importlib

import pytest
import torch

from cnnkit import conv

CHECKED_ON = "2.14.1"  # torch version whose OpInfo samples this file was run against
OPS = {
    "nn.functional.conv2d": conv.conv2d,
    "nn.functional.max_pool2d": conv.max_pool2d,
    "nn.functional.avg_pool2d": conv.avg_pool2d,
}
# Samples that may be skipped, with the reason. Empty: every sample of the three ops passes.
SKIPPED: dict[str, str] = {}


def _op_db():
    try:
        module = importlib.import_module("torch.testing._internal.common_methods_invocations")
    except ImportError as error:  # fail loudly, never skip: the promise is "checked against torch's samples"
        pytest.fail(f"torch.testing._internal.common_methods_invocations no longer imports on torch "
                    f"{torch.__version__} ({error}); this test was written for torch=={CHECKED_ON}")
    return {op.name: op for op in module.op_db if op.name in OPS and op.variant_test_name == ""}


def test_torch_version_is_the_one_checked():
    assert torch.__version__.split("+")[0] == CHECKED_ON, (
        f"test_conv_opinfo was checked on torch=={CHECKED_ON}, found {torch.__version__}: "
        "rerun it and update CHECKED_ON")


@pytest.fixture(scope="module")
def op_db():
    ops = _op_db()
    assert set(ops) == set(OPS), f"OpInfo entries missing from op_db: {set(OPS) - set(ops)}"
    return ops


def _differentiable(sample):
    return [t for t in (sample.input, *sample.args, *sample.kwargs.values())
            if isinstance(t, torch.Tensor) and t.requires_grad]


def _assert_same(ours, ref, where):
    ours = ours if isinstance(ours, tuple) else (ours,)
    ref = ref if isinstance(ref, tuple) else (ref,)
    assert len(ours) == len(ref), where
    for a, b in zip(ours, ref):
        assert a.shape == b.shape and a.dtype == b.dtype, f"{where}: {a.shape}/{a.dtype} vs {b.shape}/{b.dtype}"
        if b.is_floating_point():
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, equal_nan=True, msg=lambda m: f"{where}: {m}")
        else:
            assert torch.equal(a, b), f"{where}: indices differ\n{a}\n{b}"


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("name", sorted(OPS))
def test_every_opinfo_sample_matches_torch(op_db, name):
    op, ours = op_db[name], OPS[name]
    samples = list(op.sample_inputs("cpu", torch.float64, requires_grad=True))
    assert samples, f"no samples for {name}"
    checked = 0
    for i, sample in enumerate(samples):
        where = f"{name} sample {i}: input {tuple(sample.input.shape)}, args {sample.args}, kwargs {sample.kwargs}"
        if f"{name}#{i}" in SKIPPED:
            continue
        ref = op.op(sample.input, *sample.args, **sample.kwargs)
        got = ours(sample.input, *sample.args, **sample.kwargs)
        _assert_same(got, ref, where)
        inputs = _differentiable(sample)
        ref_out, got_out = (ref[0], got[0]) if isinstance(ref, tuple) else (ref, got)
        gen = torch.Generator().manual_seed(i)
        g = torch.randn(ref_out.shape, dtype=ref_out.dtype, generator=gen)
        grads_ref = torch.autograd.grad(ref_out, inputs, g, allow_unused=True)
        grads_got = torch.autograd.grad(got_out, inputs, g, allow_unused=True)
        for k, (a, b) in enumerate(zip(grads_got, grads_ref)):
            _assert_same(a, b, f"{where}, gradient of input {k}")
        checked += 1
    assert checked == len(samples) - sum(k.startswith(name + "#") for k in SKIPPED)


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_opinfo_error_input_is_rejected(op_db, name):
    op, ours = op_db[name], OPS[name]
    errors = list(op.error_inputs("cpu"))
    assert errors, f"no error inputs for {name}"
    for e in errors:
        s = e.sample_input
        with pytest.raises((ValueError, TypeError, NotImplementedError)):
            ours(s.input, *s.args, **s.kwargs)
            pytest.fail(f"{name} accepted torch's error input {tuple(s.input.shape)} {s.args} {s.kwargs} "
                        f"(torch: {e.error_type.__name__} /{e.error_regex}/)")
