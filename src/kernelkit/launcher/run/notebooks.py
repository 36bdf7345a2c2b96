"""Reading the notebooks to run and deciding where each result goes.

Every check happens before any kernel starts: bad input is one line and exit
status 2, and the input file is only ever read.
"""

import json
import os
import warnings


class UsageError(Exception):
    """Bad input: one line, exit status 2."""


def read_notebook(path: str):
    """The notebook at ``path`` as nbformat's v4 node, valid against its schema."""
    import nbformat
    from nbformat import ValidationError

    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory, not a notebook")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        raw = json.loads(text)
    except OSError as e:
        raise UsageError(f"{path}: cannot read it: {e.strerror or e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: not a Jupyter notebook (not JSON: {str(e)[:120]})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise UsageError(f"{path}: not a Jupyter notebook (no list of cells)")
    if raw.get("nbformat") != 4:
        raise UsageError(f"{path}: nbformat version {raw.get('nbformat')!r}; kernelkit run reads version 4 "
                         "(convert it: jupyter nbconvert --to notebook --nbformat 4)")
    with warnings.catch_warnings():
        # nbformat warns about what it fills in itself (missing cell ids); the schema decides
        warnings.simplefilter("ignore")
        try:
            nb = nbformat.reads(text, as_version=4)
            nbformat.validate(nb)
        except ValidationError as e:
            where = "/".join(str(p) for p in e.absolute_path) or "the notebook"
            raise UsageError(f"{path}: not a valid notebook ({where}: {e.message[:160]})") from None
        except Exception as e:  # nbformat's readers raise many kinds
            why = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UsageError(f"{path}: not a Jupyter notebook ({why[:160]})") from None
    return nb


def notebook_language(nb) -> str:
    meta = nb.metadata
    return ((meta.get("kernelspec") or {}).get("language") or (meta.get("language_info") or {}).get("name") or "").lower()


def output_paths(notebooks: list, output) -> list:
    """Where each executed notebook is written: ``NAME.out.ipynb`` beside the input,
    ``-o FILE`` (one notebook), or ``-o DIR`` (an existing folder: same file names)."""
    if output and os.path.isdir(output):
        paths = [os.path.join(output, os.path.basename(nb)) for nb in notebooks]
        for nb, out in zip(notebooks, paths):
            if os.path.exists(nb) and os.path.exists(out) and os.path.samefile(nb, out):
                raise UsageError(f"-o {output}: would overwrite the input {nb} (name the output file instead)")
    elif output:
        if len(notebooks) > 1:
            raise UsageError(f"-o {output}: with several notebooks, -o must be an existing directory")
        if not os.path.isdir(os.path.dirname(os.path.abspath(output))):
            raise UsageError(f"cannot write {output}: no such directory")
        paths = [output]
    else:
        paths = [_beside(nb) for nb in notebooks]
    seen = {}
    for nb, out in zip(notebooks, paths):
        key = os.path.abspath(out)
        if key in seen:
            raise UsageError(f"{seen[key]} and {nb} would both be written to {out}")
        seen[key] = nb
    return paths


def _beside(path: str) -> str:
    root, ext = os.path.splitext(path)
    return f"{root}.out{ext or '.ipynb'}"


def write_notebook(nb, path: str) -> None:
    import nbformat

    nbformat.write(nb, path)
