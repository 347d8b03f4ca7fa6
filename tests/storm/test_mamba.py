"""The Mamba mixer: mamba_ssm's initialisation, causality of one direction, both directions in the
bidirectional mixer, and the same output with either scan."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from paperlab.storm.mamba import MambaConfig, MambaLayer, MambaMixer


def test_defaults_and_initialisation():
    cfg = MambaConfig(d_model=40)
    assert (cfg.d_inner, cfg.rank, cfg.d_state, cfg.d_conv) == (80, 3, 16, 4)
    m = MambaMixer(cfg)
    br = m.forward_ssm
    torch.testing.assert_close(-torch.exp(br.A_log), -torch.arange(1, 17.0).repeat(80, 1))
    dt = F.softplus(br.dt_proj.bias.detach())
    assert float(dt.min()) >= 1e-3 * 0.999 and float(dt.max()) <= 0.1 * 1.001
    assert torch.all(br.D == 1)
    # the backward direction has its own parameters
    assert m.backward_ssm is not None and m.backward_ssm.x_proj.weight.data_ptr() != br.x_proj.weight.data_ptr()


def _effect(mixer, x, t):
    """Which output positions change when input position t changes."""
    y0 = mixer(x)
    x2 = x.clone()
    x2[:, t] += 1.0
    return (mixer(x2) - y0).abs().amax(dim=(0, 2)) > 1e-7


def test_unidirectional_is_causal_bidirectional_sees_both_ways():
    torch.manual_seed(0)
    x = torch.randn(2, 20, 16)
    uni = MambaMixer(MambaConfig(d_model=16, bidirectional=False))
    changed = _effect(uni, x, 10)
    assert not changed[:10].any() and changed[10:].all()
    bi = MambaMixer(MambaConfig(d_model=16))
    changed = _effect(bi, x, 10)
    assert changed[:10].all() and changed[10:].all()


def test_layer_is_residual_and_scans_agree():
    torch.manual_seed(1)
    x = torch.randn(2, 33, 16)
    layer = MambaLayer(MambaConfig(d_model=16, scan="parallel"))
    y_par = layer(x)
    seq = MambaLayer(MambaConfig(d_model=16, scan="sequential"))
    seq.load_state_dict(layer.state_dict())
    torch.testing.assert_close(seq(x), y_par, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        layer.mixer.out_proj.weight.zero_()
    torch.testing.assert_close(layer(x), x)            # X + Mixer(LN(X)) with a zero mixer output is X
