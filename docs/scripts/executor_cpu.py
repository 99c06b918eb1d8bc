"""Executor CPU per camera image: rclpy's SingleThreadedExecutor against its EventsExecutor.

Quoted in docs/pipeline.md. Run with the project's venv:
``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST .venv/bin/python docs/scripts/executor_cpu.py``.
A child process publishes 128x128 rgb8 images at 30 Hz; a bare node (one subscription
with an empty callback, two timers) takes them for 20 s under each executor and prints
the spinning thread's CPU time per image. Then, in a child sent SIGTERM after 5 s and
killed 2 s later, it checks whether ``EventsExecutor.spin()`` (no timeout) fires a 10 Hz
timer, how much CPU it burns meanwhile and whether SIGTERM stops it.
"""

import os
import subprocess
import sys
import time

from adaptive_perception.launcher.soak import process_usage

SECONDS = 20.0


def publish() -> None:
    """Publish 128x128 rgb8 images at 30 Hz until killed."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('image_publisher')
    publisher = node.create_publisher(Image, 'image', qos_profile_sensor_data)
    msg = Image(width=128, height=128, encoding='rgb8', step=384, data=bytes(128 * 128 * 3))
    while True:
        publisher.publish(msg)
        time.sleep(1 / 30)


def measure(kind: str) -> None:
    """Print the spinning thread's CPU per image under executor ``kind``."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.experimental import EventsExecutor
    from rclpy.qos import qos_profile_sensor_data
    from rclpy.task import Future
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node(f'take_{kind}')
    count = [0]
    node.create_subscription(Image, 'image', lambda msg: count.__setitem__(0, count[0] + 1),
                             qos_profile_sensor_data)
    node.create_timer(0.5, lambda: None)
    node.create_timer(1.0, lambda: None)
    executor = EventsExecutor() if kind == 'events' else SingleThreadedExecutor()
    executor.add_node(node)
    while count[0] == 0:  # matched and flowing
        executor.spin_until_future_complete(Future(), timeout_sec=0.1)
    start_cpu, start_count = time.thread_time(), count[0]
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        executor.spin_until_future_complete(Future(), timeout_sec=0.5)
    images = count[0] - start_count
    print(f'{kind}: {images} images, executor thread '
          f'{(time.thread_time() - start_cpu) * 1000 / images:.2f} ms CPU per image', flush=True)


def spin_forever() -> None:
    """Spin a node with a 10 Hz timer in ``EventsExecutor.spin()``, printing each tick."""
    import rclpy
    from rclpy.experimental import EventsExecutor
    rclpy.init()
    node = rclpy.create_node('spin_forever')
    node.create_timer(0.1, lambda: print('tick', flush=True))
    executor = EventsExecutor()
    executor.add_node(node)
    executor.spin()


def main() -> None:
    """Run the measurement and the spin() check, or one role when given one."""
    if len(sys.argv) > 1:
        {'publish': publish, 'measure': lambda: measure(sys.argv[2]),
         'spin': spin_forever}[sys.argv[1]]()
        return
    os.environ.setdefault('ROS_DOMAIN_ID', str(100 + os.getpid() % 100))
    here = [sys.executable, __file__]
    publisher = subprocess.Popen(here + ['publish'])
    try:
        for kind in ('single_threaded', 'events'):
            subprocess.run(here + ['measure', kind], check=True)
    finally:
        publisher.kill()
        publisher.wait()
    child = subprocess.Popen(here + ['spin'], stdout=subprocess.PIPE, text=True)
    time.sleep(5)
    child.terminate()  # SIGTERM, as a launcher sends
    time.sleep(2)
    alive = child.poll() is None
    usage = process_usage(child.pid)  # None once it has ended
    child.kill()
    ticks = child.communicate()[0].count('tick')
    cpu = f'{usage[1]:.1f} s CPU' if usage else 'CPU not readable'
    print(f'EventsExecutor.spin(): {ticks} ticks of a 10 Hz timer in 7 s, {cpu}, '
          f'{"still running" if alive else "ended"} 2 s after SIGTERM')


if __name__ == '__main__':
    main()
