"""The end of a run of several notebooks: the summary table and JUnit XML for CI."""

import xml.etree.ElementTree as ET

from .terminal import plural


def summary_table(results, terminal) -> list:
    """One row per notebook (status, time, failing cell), in the order given."""
    rows = [("notebook", "status", "time", "failing cell")]
    rows += [(r.path, r.status, f"{r.seconds:.2f} s", r.line() if r.exit else "") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for k, row in enumerate(rows):
        cells = [row[i].ljust(widths[i]) for i in range(3)]
        if k == 0:
            cells = [terminal.bold(c) for c in cells]
        elif row[1] == "ok":
            cells[1] = terminal.green(cells[1])
        else:
            cells[1] = terminal.red(cells[1])
        lines.append("  ".join([*cells, row[3]]).rstrip())
    return lines


def counts(results) -> str:
    statuses = [r.status for r in results]
    parts = ", ".join(f"{statuses.count(s)} {s}" for s in ("ok", "failed", "not started", "stopped") if s in statuses)
    return f"{plural(len(results), 'notebook')}: {parts}"


def write_junit(results, path: str, seconds: float) -> None:
    """One test case per notebook: a failing cell is a <failure>, a kernel that did
    not start or a stopped run an <error>."""
    failures = sum(r.exit == 1 for r in results)
    errors = sum(r.exit not in (0, 1) for r in results)
    suite = ET.Element("testsuite", name="kernelkit run", tests=str(len(results)), failures=str(failures),
                       errors=str(errors), skipped="0", time=f"{seconds:.3f}")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname="kernelkit.run", name=r.path, time=f"{r.seconds:.3f}")
        if r.exit:
            tag = "failure" if r.exit == 1 else "error"
            ET.SubElement(case, tag, message=r.line(), type=r.ename).text = r.details or r.line()
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
