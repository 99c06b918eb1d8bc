"""Camera-sized frames on one host: the shipped Fast DDS profile, as both launchers apply it."""

import pytest

from adaptive_perception.middleware import PROFILE_VARIABLE, middleware_env
from adaptive_perception.paths import fastdds_profile_file
from adaptive_perception.ros.delivery_bench import measure


def test_every_node_gets_the_shipped_profile_unless_the_user_set_one():
    assert fastdds_profile_file().is_file()
    assert middleware_env({}) == {PROFILE_VARIABLE: str(fastdds_profile_file())}
    assert middleware_env({PROFILE_VARIABLE: '/mine.xml'}) == {}  # the user's wins
    assert middleware_env({}, profile='') == {}                   # fastdds_profile:=''
    assert middleware_env({}, profile='/other.xml') == {PROFILE_VARIABLE: '/other.xml'}


@pytest.mark.slow
@pytest.mark.parametrize('width, height, hz', [(640, 480, 30.0), (1280, 720, 15.0)])
def test_camera_sized_frames_arrive_with_sensor_data_qos(width, height, hz):
    """An outside publisher, sensor-data QoS: at least 99% reach a subscriber that keeps up."""
    row = measure(width, height, hz, 'sensor_data', 3.0, str(fastdds_profile_file()))
    assert row['published'] == round(3.0 * hz), row
    assert row['delivered'] >= 0.99 * row['published'], row
