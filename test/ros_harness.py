"""Helpers for tests that talk DDS: start nodes as processes, wait for messages.

Discovery stays on loopback and every test run gets its own random domain (set
in ``conftest.py`` before rclpy starts). Nothing here sleeps a fixed time: every
wait spins until a condition holds or a timeout expires.
"""

import os
import time
from pathlib import Path

import rclpy
from rcl_interfaces.srv import SetParameters, SetParametersAtomically
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from adaptive_perception.launcher.plan import NodeSpec
from adaptive_perception.launcher.processes import NodeProcess

REPO = Path(__file__).resolve().parents[1]
RETRY_S = 2.0  # a parameter request unanswered this long is sent again


def child_processes(pid: int) -> dict:
    """Return the running (not zombie) children of ``pid`` from /proc: child pid -> argv."""
    found = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
            if int(fields[1]) == pid and fields[0] != 'Z':
                with open(f'/proc/{entry}/cmdline', 'rb') as f:
                    found[int(entry)] = [a.decode() for a in f.read().split(b'\0') if a]
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return found


def node_env() -> dict:
    """Environment for node processes: the source tree first on the import path."""
    return {'PYTHONPATH': os.pathsep.join(p for p in [str(REPO), os.environ.get('PYTHONPATH')]
                                          if p)}


def start_node(executable: str, log_dir: Path, name: str | None = None,
               params: dict | None = None, remaps: dict | None = None) -> NodeProcess:
    """Start one of the package's executables with ``params`` as a separate process."""
    spec = NodeSpec(name or executable, executable, 'core', params or {})
    return NodeProcess(spec, log_dir, remaps=remaps, env=node_env())


class Probe:
    """A node in the test process that publishes, subscribes and waits."""

    def __init__(self, name: str = 'test_probe'):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._subscriptions = {}  # topic -> the probe's subscription

    def subscribe(self, msg_type, topic: str, qos) -> list:
        """Collect every message on ``topic`` into the returned list."""
        received = []
        self._subscriptions[topic] = self.node.create_subscription(msg_type, topic,
                                                                   received.append, qos)
        return received

    def spin_until(self, condition, timeout_s: float, what: str = 'condition'):
        """Spin until ``condition()`` is truthy; fail with ``what`` after the timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            self.executor.spin_once(timeout_sec=0.05)
        raise AssertionError(f'timed out after {timeout_s} s waiting for {what}')

    def spin_for(self, seconds: float) -> None:
        """Keep processing callbacks for ``seconds`` (to observe that nothing happens)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)

    def wait_for_subscribers(self, publisher, count: int = 1, timeout_s: float = 15.0):
        """Wait until ``publisher`` is matched by ``count`` subscriptions."""
        self.spin_until(lambda: publisher.get_subscription_count() >= count, timeout_s,
                        f'{count} subscriber(s) on {publisher.topic_name}')

    def wait_for_publishers(self, topic: str, count: int = 1, timeout_s: float = 15.0):
        """Wait until the probe's subscription on ``topic`` is matched by ``count`` publishers.

        Before that, a volatile publisher's first messages can be lost to the probe.
        """
        subscription = self._subscriptions[topic]
        self.spin_until(lambda: subscription.get_publisher_count() >= count, timeout_s,
                        f'{count} publisher(s) on {topic}')

    def set_parameters(self, node_name: str, values: dict, atomically: bool = False,
                       timeout_s: float = 15.0):
        """Set parameters on another node, one by one (list of results) or atomically."""
        service = SetParametersAtomically if atomically else SetParameters
        name = f'/{node_name}/set_parameters' + ('_atomically' if atomically else '')
        client = self.node.create_client(service, name)
        self.spin_until(lambda: client.service_is_ready(), timeout_s, f'{name} service')
        request = service.Request(parameters=[
            Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        # service_is_ready() means the server's request reader is matched, not that the
        # server has matched this client's response reader yet: an early response can be
        # lost. Setting the same values again is harmless, so ask again until answered.
        deadline = time.monotonic() + timeout_s
        while True:
            future = client.call_async(request)
            try:
                self.spin_until(future.done, min(RETRY_S, max(0.0, deadline - time.monotonic())),
                                f'{name} response')
                break
            except AssertionError:
                client.remove_pending_request(future)
                if time.monotonic() >= deadline:
                    raise AssertionError(f'timed out after {timeout_s} s waiting for '
                                         f'{name} response') from None
        self.node.destroy_client(client)
        return future.result().result if atomically else future.result().results

    def close(self) -> None:
        """Destroy the node and shut this context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


