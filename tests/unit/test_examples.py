"""The example device file in docs/ loads and matches the simulator's groups."""

from pathlib import Path

from devices.config_file import load_device_file
from stadspuls.simulator import sample_groups

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "devices.yaml"


def test_example_device_file_loads_and_registers_the_simulator_groups():
    devices, groups = load_device_file(EXAMPLE)
    assert {g.name: (g.profile, g.key_prefix) for g in groups} == {
        g.name: (g.profile, g.key_prefix) for g in sample_groups()
    }
    assert {group.name: dict(group.attributes) for group in groups} == {
        group.name: dict(group.attributes) for group in sample_groups()
    }
    assert [key for key, _device in devices] == ["city-air/dl-pm-0", "12331981"]
