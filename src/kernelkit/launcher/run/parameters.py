"""papermill's parameter model, with papermill's own code.

``-f FILE``, then ``-y YAML``, then ``-p NAME VALUE`` (typed by papermill's rule:
True, False, None, int, float, else text), then ``-r NAME VALUE`` (raw text), the
later winning, as in papermill's CLI. The values go into an ``injected-parameters``
cell after the cell tagged ``parameters`` (replacing an earlier injected cell, or
at the top when there is no tagged cell), written by papermill's translator for
the kernel's language, and into ``metadata.papermill`` as papermill records them.

papermill is imported only when a run has parameters (about 0.2 s).
"""

from datetime import datetime, timezone

from .notebooks import UsageError


def _yaml_mapping(text: str, where: str) -> dict:
    import yaml
    from papermill.iorw import NoDatesSafeLoader  # papermill's loader: dates stay text

    try:
        value = yaml.load(text, Loader=NoDatesSafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"{where}: not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{where}: parameters must be a YAML mapping (NAME: VALUE), not a {type(value).__name__}")
    return value


def collect(files, yamls, typed, raw) -> dict:
    """The parameters given on the command line, merged in papermill's order."""
    if not (files or yamls or typed or raw):
        return {}
    from papermill.cli import _resolve_type  # papermill's own typing of -p values

    params = {}
    for path in files or []:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise UsageError(f"-f {path}: cannot read it: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise UsageError(f"-f {path}: not a text file") from None
        params.update(_yaml_mapping(text, f"-f {path}"))
    for text in yamls or []:
        params.update(_yaml_mapping(text, "-y"))
    for name, value in typed or []:
        params[_check_name(name, "-p")] = _resolve_type(value)
    for name, value in raw or []:
        params[_check_name(name, "-r")] = value
    for name in params:
        if not isinstance(name, str) or not name.isidentifier():
            raise UsageError(f"parameter name {name!r} is not a valid identifier")
    return params


def _check_name(name: str, flag: str) -> str:
    if not name.isidentifier():
        raise UsageError(f"{flag} {name} ...: {name!r} is not a valid parameter name")
    return name


def record(nb, params: dict, kernel_name: str, language: str, input_path: str, output_path) -> list:
    """Inject the parameters (when there are any) and start ``metadata.papermill``;
    return the names given that the ``parameters`` cell does not set (papermill
    warns about them: typos), when papermill can read that cell.

    Without parameters papermill is not imported; the metadata still says what ran
    (papermill's keys, its version only when it is installed).
    """
    if not isinstance(nb.metadata.get("papermill"), dict):
        meta = {"default_parameters": {}, "parameters": {}, "environment_variables": {}}
        version = _papermill_version()
        if version:
            meta["version"] = version
        nb.metadata["papermill"] = meta  # (nbformat stores a copy)
    for cell in nb.cells:  # papermill gives every cell a list of tags (its injection looks for them)
        cell.metadata.setdefault("tags", [])
    unknown = []
    if params:
        from papermill.inspection import _infer_parameters
        from papermill.parameterize import parameterize_notebook

        known = {p.name for p in _infer_parameters(nb, name=kernel_name, language=language or None)}
        unknown = [name for name in params if known and name not in known]
        injected = parameterize_notebook(nb, params, kernel_name=kernel_name, language=language or None)
        nb.cells = injected.cells
        nb.metadata = injected.metadata
    nb.metadata["papermill"].update(input_path=input_path, output_path=output_path)
    return unknown


def _papermill_version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("papermill")
    except PackageNotFoundError:
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def run_started(nb) -> None:
    """papermill's run metadata: code cells start with no outputs, every cell pending."""
    nb.metadata["papermill"].update(start_time=_now(), end_time=None, duration=None, exception=None)
    for cell in nb.cells:
        cell.metadata["papermill"] = {"exception": None, "start_time": None, "end_time": None, "duration": None,
                                      "status": "pending"}
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None


def cell_started(cell) -> None:
    cell.metadata["papermill"].update(start_time=_now(), status="running", exception=False)


def cell_ended(cell, seconds: float, failed: bool) -> None:
    cell.metadata["papermill"].update(end_time=_now(), duration=seconds, exception=failed,
                                      status="failed" if failed else "completed")


def run_ended(nb, seconds: float, failed: bool) -> None:
    nb.metadata["papermill"].update(end_time=_now(), duration=seconds, exception=True if failed else None)
    for cell in nb.cells:  # as papermill: the cells before a failure (markdown too) are completed
        status = cell.metadata["papermill"]["status"]
        if status == "failed":
            break
        if status == "pending":
            cell.metadata["papermill"]["status"] = "completed"
