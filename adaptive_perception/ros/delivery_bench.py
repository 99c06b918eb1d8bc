"""``adaptive-perception bench delivery``: camera-sized frames from one process to another.

A plain rclpy publisher (standing in for a camera driver) and a plain subscriber
(standing in for a node that keeps up: it only counts) run as two processes on this
host, on a private DDS domain. Per frame size, rate and QoS it prints frames
delivered / published, with Fast DDS's defaults and with the shipped profile
(``config/fastdds_large_data.xml``, what both launchers give every node).

The subscriber keeps a queue of ``--depth`` frames (default 10): it measures what the
middleware delivers to a reader that keeps up. The nodes themselves keep only the
newest frame (depth 1) and count the ones they had no time for as dropped in their
diagnostics; ``--depth 1`` measures that case (on a loaded machine a reader that
was off the CPU for a frame interval then loses frames that did arrive).

    adaptive-perception bench delivery                 # 640x480@30, 1280x720@15, 4 s each
    adaptive-perception bench delivery --seconds 10 --qos sensor_data
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

SIZES = ((640, 480, 30.0), (1280, 720, 15.0))
MATCH_TIMEOUT_S = 30.0
IDLE_END_S = 3.0  # the subscriber stops this long after the last frame


def _publish(args) -> int:
    import rclpy
    from sensor_msgs.msg import Image

    from adaptive_perception.ros.interfaces import camera_qos
    rclpy.init()
    node = rclpy.create_node('delivery_bench_publisher')
    publisher = node.create_publisher(Image, args.topic, camera_qos(args.qos))
    msg = Image(height=args.height, width=args.width, encoding='rgb8', step=args.width * 3,
                data=bytes(args.width * args.height * 3))
    deadline = time.monotonic() + MATCH_TIMEOUT_S
    while publisher.get_subscription_count() < 1 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    if publisher.get_subscription_count() < 1:
        print(json.dumps({'published': 0, 'error': 'no subscriber matched'}), flush=True)
        return 1
    time.sleep(0.5)  # the subscriber's side of the match
    period = 1.0 / args.hz
    start = time.monotonic()
    for i in range(args.frames):
        delay = start + i * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        msg.header.frame_id = str(i)
        msg.header.stamp = node.get_clock().now().to_msg()
        publisher.publish(msg)
    achieved = (args.frames - 1) / max(time.monotonic() - start, 1e-9)
    time.sleep(1.0)  # let the last frames (and reliable repairs) go out
    print(json.dumps({'published': args.frames, 'rate_hz': achieved}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def _subscribe(args) -> int:
    import rclpy
    from sensor_msgs.msg import Image

    from adaptive_perception.ros.interfaces import camera_qos
    rclpy.init()
    node = rclpy.create_node('delivery_bench_subscriber')
    seen = set()
    last = [None]

    def on_frame(msg):
        seen.add(msg.header.frame_id)
        last[0] = time.monotonic()

    qos = camera_qos(args.qos)
    qos.depth = args.depth
    node.create_subscription(Image, args.topic, on_frame, qos)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        if last[0] is not None and time.monotonic() - last[0] > IDLE_END_S:
            break
    print(json.dumps({'delivered': len(seen)}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def measure(width: int, height: int, hz: float, qos: str, seconds: float,
            profile: str | None, depth: int = 10) -> dict:
    """One publisher/subscriber pair; ``profile`` None = Fast DDS defaults."""
    frames = max(2, int(round(seconds * hz)))
    env = {k: v for k, v in os.environ.items() if k != 'FASTDDS_DEFAULT_PROFILES_FILE'}
    if profile:
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = profile
    env['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(102, 200))
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    base = [sys.executable, '-m', __name__]
    common = ['--topic', 'bench_image', '--qos', qos]
    sub = subprocess.Popen([*base, 'sub', *common, '--depth', str(depth), '--timeout',
                            str(MATCH_TIMEOUT_S + seconds + 30)],
                           env=env, stdout=subprocess.PIPE, text=True)
    pub = subprocess.Popen([*base, 'pub', *common, '--width', str(width), '--height',
                            str(height), '--hz', str(hz), '--frames', str(frames)],
                           env=env, stdout=subprocess.PIPE, text=True)
    pub_out, _ = pub.communicate(timeout=MATCH_TIMEOUT_S + seconds + 60)
    sub_out, _ = sub.communicate(timeout=MATCH_TIMEOUT_S + seconds + 60)
    result = {'size': f'{width}x{height}', 'hz': hz, 'qos': qos, 'depth': depth,
              'profile': Path(profile).name if profile else 'Fast DDS defaults'}
    result.update(json.loads(pub_out.strip().splitlines()[-1]))
    result.update(json.loads(sub_out.strip().splitlines()[-1]))
    return result


def run_bench(seconds: float, qos_names, profiles, sizes=SIZES, depth: int = 10) -> list:
    """Measure every (profile, size, QoS); print one line each; return the rows."""
    rows = []
    for profile in profiles:
        for width, height, hz in sizes:
            for qos in qos_names:
                row = measure(width, height, hz, qos, seconds, profile, depth)
                share = row['delivered'] / row['published'] if row['published'] else 0.0
                row['share'] = share
                print(f"{row['profile']:<26} {row['size']:>9} @{hz:g} Hz  {qos:<11} "
                      f"delivered/published {row['delivered']}/{row['published']} "
                      f"({share:.1%})", flush=True)
                rows.append(row)
    return rows


def main(argv=None) -> int:
    """``python -m adaptive_perception.ros.delivery_bench pub|sub ...`` (the bench's halves)."""
    parser = argparse.ArgumentParser(prog='delivery_bench')
    parser.add_argument('role', choices=['pub', 'sub'])
    parser.add_argument('--topic', default='bench_image')
    parser.add_argument('--qos', default='sensor_data')
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--hz', type=float, default=30.0)
    parser.add_argument('--frames', type=int, default=120)
    parser.add_argument('--timeout', type=float, default=60.0)
    parser.add_argument('--depth', type=int, default=10)
    args = parser.parse_args(argv)
    return _publish(args) if args.role == 'pub' else _subscribe(args)


if __name__ == '__main__':
    raise SystemExit(main())
