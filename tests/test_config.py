import pytest

from mtnet.config import ConfigError, load_config, parse_overrides


def test_packaged_quickstart_loads_with_overrides():
    cfg = load_config("quickstart", ["train.epochs=3", "model.tasks=[det,seg]", "data.augment.scale=[0.5,1.5]"])
    assert cfg.train.epochs == 3
    assert cfg.model.tasks == ["det", "seg"]
    assert cfg.data.augment.scale == (0.5, 1.5)


def test_unknown_key_names_the_key_and_suggests(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  epohcs: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'train.epohcs'.*'train.epochs'"):
        load_config(p)


def test_unknown_override_is_rejected():
    with pytest.raises(ConfigError, match="unknown config key 'model.depth'"):
        load_config("quickstart", ["model.depth=3"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=abc", "train.epochs: expected an integer"),
        ("model.tasks=[det,depth]", "model.tasks"),
        ("model.tasks=[pose]", None),  # valid config; rejected when the model is built (pose needs det)
        ("data.imgsz=100", "multiple of 32"),
        ("data.train_crop=100", "data.train_crop: expected 0 or a multiple of 32"),
        ("data.train_crop=-32", "data.train_crop: expected 0 or a multiple of 32"),
        ("train.optimizer=lamb", "train.optimizer"),
        ("model.head_strides=[4,8]", "model.head_strides: expected an ascending subset"),
        ("model.head_strides=[16,8]", "model.head_strides: expected an ascending subset"),
        ("model.head_strides=[]", "model.head_strides: expected an ascending subset"),
        ("model.pose_channels=-8", "model.pose_channels: expected 0"),
        ("model.pose_blocks=0", "model.pose_blocks: expected at least 1"),
        ("noequals", "key.sub=value"),
    ],
)
def test_bad_values_give_clear_errors(override, message):
    if message is None:
        assert load_config("quickstart", [override]).model.tasks == ["pose"]
        return
    with pytest.raises(ConfigError, match=message):
        load_config("quickstart", [override])


def test_pan_needs_a_head_on_stride_32():
    with pytest.raises(ConfigError, match="model.pan: the bottom-up path ends in P5"):
        load_config("quickstart", ["model.head_strides=[8]", "model.pan=true"])


def test_missing_config_file_lists_packaged_ones():
    with pytest.raises(ConfigError, match="config file not found: nope.yaml.*quickstart"):
        load_config("nope.yaml")


def test_overrides_parse_yaml_values():
    assert parse_overrides(["a.b=1", "a.c=true", "d=[1,2]"]) == {"a": {"b": 1, "c": True}, "d": [1, 2]}


def test_unquoted_off_keeps_its_meaning_for_string_options():
    """YAML 1.1 reads `off` as false: `train.amp=off` must still mean "off", and no string option holds "False"."""
    assert load_config("quickstart", ["train.amp=off"]).train.amp == "off"
    assert load_config("quickstart", ["train.amp=false"]).train.amp == "off"
    with pytest.raises(ConfigError, match="data.on_error"):
        load_config("quickstart", ["data.on_error=no"])
