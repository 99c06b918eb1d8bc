"""Arguments more than one family's command-line verbs take (no heavy imports)."""

from dataclasses import MISSING, fields


def int8_args(parser, default_frames: int) -> None:
    """Add an export's checkpoint or ``--int8-only``, and its INT8 calibration."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument('--checkpoint', help='trained checkpoint to export (FP32 and INT8)')
    where.add_argument('--int8-only', action='store_true',
                       help='add calibrated INT8 graphs to the exported model in --out, '
                            'leaving its FP32 graphs as they are (no checkpoint needed)')
    parser.add_argument('--no-int8', action='store_true', help='write the FP32 graphs only')
    parser.add_argument('--calibration-frames', type=int, default=default_frames,
                        help='training frames the INT8 activation ranges are calibrated on')


def dataclass_args(parser, cls) -> None:
    """Add one option per field of the dataclass ``cls``, so flags cannot drift from it.

    A field's default is the option's default (a fresh copy for a list). Its metadata
    holds ``help`` and, where the plain form does not fit, argparse's own keywords
    (``flag``, ``type``, ``nargs``, ``choices``, ``metavar``, ``action``). A bool that
    defaults to False is a ``store_true`` switch. ``cli=False`` leaves a field out: a
    setting kept with the run but not offered on the command line.
    """
    for spec in fields(cls):
        meta = spec.metadata
        if not meta.get('cli', True):
            continue
        default = _default(spec)
        options = {key: meta[key] for key in ('type', 'nargs', 'choices', 'metavar', 'action')
                   if key in meta}
        if 'help' in meta:
            options['help'] = meta['help']
        if 'action' not in options:
            if default is False:
                options['action'] = 'store_true'
            elif 'type' not in options and default is not None \
                    and not isinstance(default, (str, list)):
                options['type'] = type(default)
        parser.add_argument(meta.get('flag', '--' + spec.name.replace('_', '-')),
                            dest=spec.name, default=default, **options)


def config_from_args(cls, args):
    """Return the ``cls`` that the parsed ``args`` of :func:`dataclass_args` describe."""
    return config_from_dict(cls, vars(args))


def config_from_dict(cls, values: dict):
    """Return ``cls(**values)`` of the keys ``cls`` knows; the others keep their defaults.

    A key it lacks is ignored, so that a configuration saved by an older or newer run
    still reads.
    """
    return cls(**{spec.name: values[spec.name] for spec in fields(cls) if spec.name in values})


def _default(spec):
    if spec.default_factory is not MISSING:
        return spec.default_factory()
    return None if spec.default is MISSING else spec.default
