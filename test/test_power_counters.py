"""Power counters on fake sysfs trees (RAPL, hwmon/INA3221, power_supply) and the device model."""

import threading
import time

import pytest

from adaptive_perception.power.counters import PowerCounters, read_hwmon, read_power_supply
from adaptive_perception.power.device import PRESETS, device, machine_clock_mhz
from adaptive_perception.runtime.stats import CpuMeter, level_costs, thread_cpu_clock


def write(directory, **files):
    directory.mkdir(parents=True, exist_ok=True)
    for key, value in files.items():
        (directory / key).write_text(f'{value}\n')
    return directory


def rapl(root, name, index, energy, max_range=262143328850):
    return write(root / 'class' / 'powercap' / f'intel-rapl:{index}', name=name,
                 energy_uj=energy, max_energy_range_uj=max_range)


def test_rapl_power_from_two_readings_and_subdomains_not_added(tmp_path):
    package = rapl(tmp_path, 'package-0', 0, 1_000_000)
    write(tmp_path / 'class' / 'powercap' / 'intel-rapl:0:0', name='core', energy_uj=5)
    counters = PowerCounters(tmp_path)
    assert counters.kinds == ['rapl']
    assert counters.read(10.0) == []  # the first reading only sets the mark
    (package / 'energy_uj').write_text('16000000\n')
    [reading] = counters.read(12.0)
    assert reading.source == 'rapl' and reading.watts == pytest.approx(7.5)
    assert reading.detail == 'package-0'


def test_rapl_wraparound_uses_max_energy_range(tmp_path):
    package = rapl(tmp_path, 'package-0', 0, 999_000_000, max_range=1_000_000_000)
    counters = PowerCounters(tmp_path)
    counters.read(0.0)
    (package / 'energy_uj').write_text('4000000\n')  # wrapped: 1 J + 4 J in 1 s
    assert counters.read(1.0)[0].watts == pytest.approx(5.0)


def test_rapl_prefers_psys_over_packages(tmp_path):
    rapl(tmp_path, 'package-0', 0, 0)
    psys = rapl(tmp_path, 'psys', 1, 0)
    counters = PowerCounters(tmp_path)
    counters.read(0.0)
    (psys / 'energy_uj').write_text('20000000\n')
    reading = counters.read(2.0)[0]
    assert reading.detail == 'psys' and reading.watts == pytest.approx(10.0)


def test_rapl_garbage_is_a_problem_not_a_crash(tmp_path):
    package = rapl(tmp_path, 'package-0', 0, 100)
    counters = PowerCounters(tmp_path)
    (package / 'energy_uj').write_text('garbage\n')
    assert counters.read(1.0) == [] and 'unreadable' in counters.problems[0]


def test_hwmon_power_input_in_microwatts(tmp_path):
    write(tmp_path / 'class' / 'hwmon' / 'hwmon0', name='acpi_power', power1_input=4_500_000)
    reading = read_hwmon(tmp_path, [])
    assert reading.source == 'hwmon' and reading.watts == pytest.approx(4.5)


def test_ina3221_rails_vdd_in_is_the_total(tmp_path):
    write(tmp_path / 'class' / 'hwmon' / 'hwmon1', name='ina3221',
          in1_label='VDD_IN', in1_input=5000, curr1_input=1200,
          in2_label='VDD_CPU_GPU_CV', in2_input=5000, curr2_input=400)
    reading = read_hwmon(tmp_path, [])
    assert reading.detail == 'VDD_IN' and reading.watts == pytest.approx(6.0)


def test_old_jetson_in_power_milliwatts_are_summed(tmp_path):
    write(tmp_path / 'class' / 'hwmon' / 'hwmon2', name='ina3221x', in_power0_input=3000,
          in_power1_input=1500, rail_name_0='POM_5V_GPU', rail_name_1='POM_5V_CPU')
    reading = read_hwmon(tmp_path, [])
    assert reading.watts == pytest.approx(4.5) and 'POM_5V_CPU' in reading.detail


def test_power_supply_power_now_or_current_times_voltage(tmp_path):
    write(tmp_path / 'class' / 'power_supply' / 'BAT0', type='Battery', power_now=9_000_000)
    assert read_power_supply(tmp_path, []).watts == pytest.approx(9.0)
    write(tmp_path / 'class' / 'power_supply' / 'BAT0', type='Battery', power_now='')
    (tmp_path / 'class' / 'power_supply' / 'BAT0' / 'power_now').unlink()
    write(tmp_path / 'class' / 'power_supply' / 'BAT0', current_now=-1_000_000,
          voltage_now=12_000_000)
    reading = read_power_supply(tmp_path, [])
    assert reading.watts == pytest.approx(12.0) and 'current_now' in reading.detail


def test_nothing_to_read(tmp_path):
    counters = PowerCounters(tmp_path)
    assert counters.kinds == [] and counters.read(0.0) == []


def test_device_model_presets_and_scale(tmp_path):
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text('processor\t: 0\ncpu MHz\t\t: 3000.000\n')
    assert machine_clock_mhz(cpuinfo) == 3000.0
    jetson = device('jetson_orin_nano', reference_mhz=3000.0)
    assert jetson.cpu_time_scale == pytest.approx(2.0)
    assert jetson.power_w(0.5) == pytest.approx(2.2 + 1.0 * 1.0)
    assert jetson.power_w(100.0) == pytest.approx(2.2 + 6.0), 'no more than every core busy'
    assert device('laptop_cpu', cpu_time_scale=1.0).load_w(0.25) == pytest.approx(1.65)
    assert set(PRESETS) == {'jetson_orin_nano', 'laptop_cpu'}
    with pytest.raises(ValueError, match='unknown device preset'):
        device('toaster')


def test_cpu_meter_splits_time_by_level():
    clock, cpu, ort, executor = [0.0], [0.0], [0.0], [0.0]
    meter = CpuMeter(lambda: clock[0], lambda: cpu[0], lambda: ort[0], lambda: executor[0])
    meter.switch(0, 'static', 0)
    cpu[0] = 5.0  # loading models before the first frame: not counted
    meter.values(0)
    clock[0], cpu[0] = 1.0, 5.0
    meter.values(1)  # first frame: counting starts here
    clock[0], cpu[0], ort[0], executor[0] = 3.0, 6.0, 0.5, 0.2
    meter.switch(1, 'single', 21)
    clock[0], cpu[0], ort[0], executor[0] = 5.0, 6.4, 0.7, 0.3
    values = meter.values(41)
    assert values['cpu_s_per_s_level_0'] == pytest.approx(0.5)
    assert values['cpu_ms_per_frame_level_0'] == pytest.approx(50.0)
    assert values['ort_cpu_s_per_s_level_0'] == pytest.approx(0.25)
    assert values['executor_cpu_s_per_s_level_0'] == pytest.approx(0.1)
    assert values['executor_cpu_s_per_s_level_1'] == pytest.approx(0.05)
    assert values['executor_cpu_s_per_s'] == pytest.approx(0.3 / 4.0)
    assert values['cpu_s_per_s_level_1'] == pytest.approx(0.2)
    assert values['knob_level_1'] == 'single'
    assert values['cpu_s_per_s'] == pytest.approx(1.4 / 4.0)
    assert level_costs(values) == {0: pytest.approx(0.5), 1: pytest.approx(0.2)}
    assert values['cpu_demand_s_per_s'] == pytest.approx(values['cpu_s_per_s'])


def test_cpu_meter_demand_counts_dropped_inputs_at_the_cost_per_frame():
    clock, cpu = [0.0], [0.0]
    meter = CpuMeter(lambda: clock[0], lambda: cpu[0], lambda: 0.0)
    meter.switch(0, 'static', 0)
    meter.values(1)
    clock[0], cpu[0] = 2.0, 1.0  # saturated: 10 frames processed, 10 dropped
    values = meter.values(11, dropped=10)
    assert values['cpu_s_per_s'] == pytest.approx(0.5)
    assert values['cpu_demand_s_per_s'] == pytest.approx(1.0)
    assert values['cpu_demand_s_per_s_level_0'] == pytest.approx(1.0)
    assert level_costs(values) == {0: pytest.approx(1.0)}


def test_simulator_frame_rates_parse_and_reject():
    from adaptive_perception.power.simulator_node import frame_rates
    assert frame_rates(['', 'adacon_detector=30', '/adamtl_multitask=10.5']) == {
        '/adacon_detector': 30.0, '/adamtl_multitask': 10.5}
    for bad in (['adacon_detector'], ['=3'], ['a=0'], ['a=x']):
        with pytest.raises(ValueError, match='frame_rates_hz'):
            frame_rates(bad)


def test_thread_cpu_clock_reads_its_own_thread_from_another():
    """The executor's share must be that thread's CPU, read from wherever diagnostics run."""
    done, ready = threading.Event(), threading.Event()
    clocks = {}

    def busy():
        clocks['busy'] = thread_cpu_clock()
        ready.set()
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass
        done.wait(5.0)  # stay alive until read

    worker = threading.Thread(target=busy)
    start_main = thread_cpu_clock()()
    worker.start()
    assert ready.wait(10.0)
    deadline = time.monotonic() + 10.0
    while clocks['busy']() < 0.3 and time.monotonic() < deadline:
        time.sleep(0.02)  # the main thread sleeps: its CPU clock barely moves
    busy_s, main_s = clocks['busy'](), thread_cpu_clock()() - start_main
    done.set()
    worker.join()
    assert busy_s >= 0.3
    assert main_s < 0.15
