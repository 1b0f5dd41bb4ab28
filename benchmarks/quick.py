"""--quick, which every benchmark takes: the same code on small sizes, a run of seconds that
shows it works (the tests run each so, tests/test_benchmarks.py); its figures mean little."""


def parse_args(parser, argv, note='', **quick):
    """The arguments of `argv`, with --quick added to `parser`: under it, the options that
    `argv` does not give take their values in `quick` (dests as keys); `note` says what else
    it changes."""
    shown = ' '.join(f'--{dest.replace("_", "-")}' + ('' if value is True else f' {value}')
                     for dest, value in quick.items())
    parser.add_argument('--quick', action='store_true',
                        help=f"a small, fast run of the same code: {note + ', ' if note else ''}"
                             f'{shown} unless given')
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
    return args
