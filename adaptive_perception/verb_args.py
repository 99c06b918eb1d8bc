"""Arguments more than one family's command-line verbs take (no heavy imports)."""


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
