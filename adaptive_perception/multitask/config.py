"""AdaMTL's training configuration: one dataclass for the CLI, the trainer and the checkpoint.

Every hyper-parameter of the recipe is declared once, with its default and help
text; ``train adamtl``'s options are generated from it (``verb_args.dataclass_args``)
and the checkpoint keeps it as it is (``dataclasses.asdict``). Import-light (no
torch), as the command line imports it.
"""

from dataclasses import dataclass, field

from adaptive_perception.verb_args import config_from_dict


@dataclass(frozen=True)
class Schedule:
    """Epochs per stage; ``smoke`` is the CI-sized run."""

    static: int = 30
    policy_init: int = 2
    alternating_rounds: int = 1
    fine_tune: int = 12

    @classmethod
    def smoke(cls) -> 'Schedule':
        """One epoch per stage: checks the recipe runs, not what it learns."""
        return cls(static=1, policy_init=1, alternating_rounds=1, fine_tune=1)


@dataclass
class AdamtlTrainConfig:
    """What ``train_adamtl`` trains with; data, device and the run's paths are its arguments.

    ``image_size`` and ``decoder_dim`` None: the model's own defaults. ``targets``
    empty: the thesis's policies.
    """

    seed: int = field(default=0, metadata={
        'help': 'seed of the weights, the batch order, the flips and the Gumbel noise'})
    epochs_static: int = field(default=Schedule.static, metadata={
        'help': 'stage 1 (and each single-task model)'})
    policy_init: int = field(default=Schedule.policy_init, metadata={
        'cli': False, 'help': 'stage 2: at most this many epochs (it stops once every '
                              'policy keeps everything)'})
    alternating_rounds: int = field(default=Schedule.alternating_rounds, metadata={
        'help': 'stage 3a: epochs per task'})
    epochs_fine_tune: int = field(default=Schedule.fine_tune, metadata={'help': 'stage 3b'})
    alpha: float = field(default=1.0, metadata={'help': 'efficiency loss weight'})
    skip_rate: float = field(default=0.2, metadata={
        'help': 'stage 1: stochastic depth for blocks and tokens'})
    single_task: bool = field(default=True, metadata={
        'flag': '--no-single-task', 'action': 'store_false',
        'help': 'skip the single-task reference models'})
    efficiency_weights: str = field(default='flops', metadata={
        'choices': ['flops', 'width'],
        'help': "efficiency loss: weigh blocks and tokens by the block's FLOPs, or tokens by "
                "stage width (the thesis's)"})
    distill: float = field(default=0.0, metadata={
        'help': "fine-tuning: weight of the policies' distillation from the static model "
                '(0: none)'})
    image_size: int | None = field(default=None, metadata={
        'type': int,
        'help': 'input size the model is trained at, in pixels, a multiple of 16; scenes are '
                "generated (folders resized) to it (default: the model's, 64)"})
    decoder_dim: int | None = field(default=None, metadata={
        'type': int,
        'help': "width of each task decoder, a multiple of 8 (default: the model's, 32)"})
    targets: list = field(default_factory=list, metadata={
        'nargs': '+', 'metavar': 'POLICY=BLOCKS/TOKENS',
        'help': "compute targets, e.g. low=0.7/0.6 (default: the thesis's H 0.9/0.6 and "
                'L 0.5/0.5)'})
    smoke: bool = field(default=False, metadata={
        'help': 'tiny run for CI'})
    batch_size: int = field(default=32, metadata={'cli': False, 'help': 'scenes per step'})
    lr: float = field(default=2e-3, metadata={
        'cli': False, 'help': 'stage 1 learning rate; stage 3a trains at half, 3b at a quarter'})

    @property
    def schedule(self) -> Schedule:
        """Epochs per stage (one each in a smoke run)."""
        if self.smoke:
            return Schedule.smoke()
        return Schedule(static=self.epochs_static, policy_init=self.policy_init,
                        alternating_rounds=self.alternating_rounds,
                        fine_tune=self.epochs_fine_tune)

    @classmethod
    def from_dict(cls, values: dict) -> 'AdamtlTrainConfig':
        """Read a stored configuration; keys it lacks keep their defaults."""
        return config_from_dict(cls, values)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> 'AdamtlTrainConfig':
        """Return the configuration a checkpoint was trained with, this format or an older.

        Older checkpoints kept the settings as top-level keys (``seed``, ``schedule``,
        ``alpha``...); their schedule is the one that ran (all ones in a smoke run).
        The model's size and targets are in its own ``config`` and not repeated here.
        A stage-1 file holds only stage 1's settings.
        """
        if 'train_config' in checkpoint:
            return cls.from_dict(checkpoint['train_config'])
        settings = checkpoint.get('static', {}).get('settings', {})
        values = {key: settings[key] for key in ('seed', 'batch_size', 'lr', 'skip_rate')
                  if key in settings}
        if 'static_epochs' in settings:
            values['epochs_static'] = settings['static_epochs']
        values.update({key: checkpoint[key] for key in ('seed', 'alpha', 'distill', 'lr',
                                                        'batch_size') if key in checkpoint})
        schedule = checkpoint.get('schedule', {})
        values.update({name: schedule[key] for name, key in (
            ('epochs_static', 'static'), ('policy_init', 'policy_init'),
            ('alternating_rounds', 'alternating_rounds'), ('epochs_fine_tune', 'fine_tune'))
            if key in schedule})
        if 'efficiency_weights' in checkpoint:
            values['efficiency_weights'] = checkpoint['efficiency_weights']
        return cls.from_dict(values)
