import pytest

from workbench.errors import UnknownSiteError
from workbench.sites.names import expand_sites, layer_index, pattern_regex

SITES = [
    "hook_embed",
    "blocks.0.hook_resid_pre",
    "blocks.0.attn.hook_out",
    "blocks.0.hook_resid_post",
    "blocks.1.hook_resid_pre",
    "blocks.1.attn.hook_out",
    "blocks.1.hook_resid_post",
    "blocks.10.hook_resid_post",
]


def test_star_matches_one_component_only():
    assert expand_sites(SITES, "blocks.*.hook_resid_post") == [
        "blocks.0.hook_resid_post",
        "blocks.1.hook_resid_post",
        "blocks.10.hook_resid_post",
    ]
    # `*` never crosses a dot: attn.hook_out is not matched by blocks.*.hook_out
    assert expand_sites(SITES, "blocks.*.attn.hook_out") == [
        "blocks.0.attn.hook_out",
        "blocks.1.attn.hook_out",
    ]
    assert not pattern_regex("blocks.*.hook_out").match("blocks.0.attn.hook_out")
    assert pattern_regex("blocks.**.hook_out").match("blocks.0.attn.hook_out")


def test_lists_and_order_follow_the_model():
    assert expand_sites(SITES, "blocks.1.hook_resid_pre,hook_embed") == [
        "hook_embed",
        "blocks.1.hook_resid_pre",
    ]
    assert expand_sites(SITES, ["blocks.?.hook_resid_pre"]) == [
        "blocks.0.hook_resid_pre",
        "blocks.1.hook_resid_pre",
    ]


def test_unknown_site_lists_closest_names():
    with pytest.raises(UnknownSiteError) as err:
        expand_sites(SITES, "blocks.0.hook_resid_postt")
    assert "blocks.0.hook_resid_post" in str(err.value)
    with pytest.raises(UnknownSiteError, match="matches no site"):
        expand_sites(SITES, "layers.*.out")
    with pytest.raises(UnknownSiteError, match="no sites given"):
        expand_sites(SITES, " , ")


def test_layer_index():
    assert layer_index("blocks.10.hook_resid_post") == 10
    assert layer_index("hook_embed") is None
    assert layer_index("layers.2") == 2
