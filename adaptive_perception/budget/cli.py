"""``adaptive-perception`` verbs of the budget manager: bench budget, bench endurance."""

from pathlib import Path

from adaptive_perception.errors import user_errors


class _BenchBudget:
    group, name = 'bench', 'budget'
    help = 'level-change latency and apply cost, across processes'

    def add_arguments(self, parser) -> None:
        parser.add_argument('--repeats', type=int, default=40,
                            help='threshold crossings to time')
        parser.add_argument('--out', default='reports/bench_budget.json', help='JSON result')

    def main(self, args) -> int:
        from adaptive_perception.budget.bench import run_budget_bench
        return run_budget_bench(args.repeats, Path(args.out))


class _BenchEndurance:
    group, name = 'bench', 'endurance'
    help = 'static vs threshold vs mission policy: battery life and quality, closed loop'

    def add_arguments(self, parser) -> None:
        parser.add_argument('--scenarios', nargs='+', default=['heavy', 'light'],
                            choices=['heavy', 'light'], help='which scenarios')
        parser.add_argument('--static-wall-s', type=float, default=40.0,
                            help='wall seconds a static run should take (sets the time scale)')
        parser.add_argument('--smoke', action='store_true',
                            help='a few seconds per run, static and mission only (CI)')
        parser.add_argument('--out', default='reports/bench_endurance', help='folder')

    def main(self, args) -> int:
        from adaptive_perception.budget.endurance import run_endurance
        with user_errors(TimeoutError, ValueError):
            run_endurance(Path(args.out), args.scenarios, args.static_wall_s, args.smoke)
        return 0


VERBS = (_BenchBudget(), _BenchEndurance())
