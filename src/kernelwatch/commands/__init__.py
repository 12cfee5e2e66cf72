"""One module per `kernelwatch` command, in the shape of asv's own `commands/`: each has
`add_parser(subparsers)`, which declares the command's flags and sets `handler`, and that
handler, which turns the parsed `Namespace` into plain keyword arguments for a function that
does the work (callable from Python, no argparse)."""

from kernelwatch.commands import (
    bisect,
    compare,
    docker,
    env,
    fidelity,
    history,
    publish,
    report,
    run,
)

# In the order `kernelwatch --help` lists them.
COMMANDS = (env, run, publish, report, compare, bisect, fidelity, history, docker)
