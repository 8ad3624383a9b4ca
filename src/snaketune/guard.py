"""The leader of a trainer's process group, so that no process of a trainer outlives its runner.

:func:`snaketune.supervise.run_command` runs ``python -I guard.py <fd> --shell <command line>``
(or ``--exec <program> <args>...``) in a session of its own. The guard starts the trainer in its
group, exits as the trainer did (its exit status, or its signal), and SIGKILLs the whole group
when the pipe ``<fd>`` reads end-of-file: the runner holds the pipe's only write end, so that
happens when the runner dies, however it dies, by SIGKILL too. (Linux's ``PR_SET_PDEATHSIG``
reaches only a process's own child, not the children of a shell command line; a pipe works the
same on every POSIX system.)

It runs as a script, never imported by the package, and imports only a little of the standard
library: a guard costs a bare Python start (tens of milliseconds), not snaketune's imports.
"""

import os
import signal
import sys
import threading


def _ignore(signum, frame) -> None:
    pass


def main(argv: list[str]) -> int:
    lifeline, how, *cmd = argv
    fd = int(lifeline)
    # The group's SIGTERM (a timeout, a stop) is for the trainer; the guard stays to report how the
    # trainer ended. A handler rather than SIG_IGN, which the trainer would inherit.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _ignore)
    program = ["/bin/sh", "-c", cmd[0]] if how == "--shell" else cmd
    pid = os.fork()
    if pid == 0:  # the trainer: no thread runs yet, so forking is safe
        os.close(fd)
        try:
            os.execvp(program[0], program)
        except OSError as e:
            os.write(2, f"cannot run {program[0]}: {e.strerror}\n".encode())
        os._exit(127)

    def watch() -> None:
        while os.read(fd, 1):  # the runner never writes: this returns at end-of-file
            pass
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if status < 0:  # die of the trainer's signal, so that the runner sees it (with no core file)
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
