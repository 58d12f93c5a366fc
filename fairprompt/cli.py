"""The ``fairprompt`` command line: parse, call the API, print.

A :class:`~fairprompt.errors.FairpromptError`, and every usage error (a bad
option value, an unknown option, a missing argument), is printed as one line on
stderr and the command exits with status 2, without a traceback or a usage block.
Progress goes to stderr: rich bars on a terminal, one plain line per stage
otherwise (a CI log, a pipe), nothing with ``--quiet``.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from fairprompt import __version__
from fairprompt.errors import FairpromptError

EXIT_USER_ERROR = 2
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2; older clicks exit 0 themselves


def _one_line(text: str) -> str:
    """``text`` with its line breaks (and the spaces around them) as one space."""
    return re.sub(r"\s*[\r\n]+\s*", " ", str(text)).strip()


def _usage_line(exc: click.UsageError) -> str:
    """Click's message of a usage error, on one line, with the ``--help`` of the command it concerns."""
    names: list[str] = []
    ctx = exc.ctx
    while ctx is not None:
        names.insert(0, (ctx.info_name or "") if ctx.parent is not None else "fairprompt")
        ctx = ctx.parent
    command = " ".join(n for n in names if n) or "fairprompt"
    message = re.sub(r"\. Did you mean (.*\?)$", r" (did you mean \1)", _one_line(exc.format_message())).rstrip(".")
    if message[:1].isupper() and message[1:2].islower():
        message = message[0].lower() + message[1:]
    return f"{message}; see `{command} --help`"


class _Group(click.Group):
    """Turns user errors and usage errors into one line and exit status 2."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # noqa: D102
        kwargs.setdefault("standalone_mode", True)
        try:
            return super().main(*args, **{**kwargs, "standalone_mode": False})
        except FairpromptError as exc:
            click.echo(f"error: {_one_line(str(exc))}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        except _NO_ARGS_IS_HELP as exc:  # a bare `fairprompt` or `fairprompt mitigate`: its help
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            click.echo(f"error: {_usage_line(exc)}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except click.ClickException as exc:
            click.echo(f"error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)


@contextmanager
def _progress(quiet: bool) -> Iterator[Any]:
    """A ``progress(stage, done, total)`` callback for stderr (None when quiet): rich bars on a terminal, else
    :func:`_stage_lines`.

    The display starts with the first report, so a command that fails while
    checking its inputs prints nothing but its one-line error.
    """
    if quiet:
        yield None
        return
    if not (sys.stderr is not None and sys.stderr.isatty()):
        yield _stage_lines(lambda line: click.echo(line, err=True))
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bars = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), console=Console(stderr=True), transient=False)
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if not tasks:
            bars.start()
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)

    try:
        yield update
    finally:
        if tasks:
            bars.stop()


def _stage_lines(echo: Callable[[str], None]) -> Callable[[str, int, int], None]:
    """A progress callback for logs: one line when a stage starts (``predict (6,000) ...``) and one when it
    ends, with its duration (``predict: done in 12.3 s``), never one per update."""
    running: dict[str, float] = {}
    finished: set[str] = set()

    def update(stage: str, done: int, total: int) -> None:
        if done < total:
            if stage not in running:
                running[stage] = time.perf_counter()
                finished.discard(stage)
                echo(f"{stage} ({total:,}) ..." if total > 1 else f"{stage} ...")
        elif stage in running:
            echo(f"{stage}: done in {time.perf_counter() - running.pop(stage):.1f} s")
            finished.add(stage)
        elif stage not in finished:
            echo(f"{stage}: done")
            finished.add(stage)

    return update


def _say(ctx: click.Context, message: str) -> None:
    if not ctx.obj.get("quiet"):
        click.echo(message)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fairprompt")
@click.option("--quiet", "-q", is_flag=True, help="No progress (bars, or stage lines in a log) and no messages, only errors.")
@click.pass_context
def cli(ctx: click.Context, quiet: bool) -> None:
    """Audit models for unfair treatment of groups, and repair them with prompts only."""
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet
    _log_warnings(quiet)


class _WarningLine(logging.Handler):
    """The library's warnings (logger ``fairprompt``) as ``warning: ...`` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"warning: {record.getMessage()}", err=True)


def _log_warnings(quiet: bool) -> None:
    logger = logging.getLogger("fairprompt")
    for handler in [h for h in logger.handlers if isinstance(h, _WarningLine)]:
        logger.removeHandler(handler)
    if not quiet:
        logger.addHandler(_WarningLine(level=logging.WARNING))
        logger.setLevel(logging.WARNING)


def _split_columns(value: str | None) -> list[str]:
    return [c.strip() for c in value.split(",") if c.strip()] if value else []


def _references(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        column, sep, group = item.partition("=")
        if not sep or not column.strip():
            raise FairpromptError(f"--reference {item!r} is not COLUMN=VALUE; write it like --reference sex=Male")
        out[column.strip()] = group.strip()
    return out


def row_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--no-row-output`` and ``--final``, for every command that runs a spec's model."""
    command = click.option("--final", is_flag=True,
                           help="Also predict the spec's final split (model.splits.final) with the audited model and each "
                                "repair's chosen point, into predictions.parquet: for the one final judgement, never "
                                "while developing.")(command)
    return click.option("--no-row-output", is_flag=True,
                        help="Do not write predictions.parquet (every decision of the audited model and of each "
                             "repair's grid point).")(command)


@cli.command()
@click.argument("spec", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--predictions", type=click.Path(path_type=Path),
              help="Predictions to audit: a CSV, gzipped CSV or Parquet file, or a directory or glob of Parquet "
                   "files (read batch by batch: any size).")
@click.option("--label", help="Column of true outcomes.")
@click.option("--prediction", help="Column of predicted outcomes.")
@click.option("--score", help="Column of scores or probabilities (AUC, calibration, scoring rate).")
@click.option("--weight", help="Column of sample weights.")
@click.option("--positive-label", help="Value of label and prediction that is the favourable outcome.")
@click.option("--score-threshold", type=float, help="Predict positive where score >= T (instead of --prediction).")
@click.option("--score-scale", type=click.Choice(["probability", "logit"]),
              help="Scores are probabilities in [0, 1] [probability] or log-odds (mapped through the sigmoid).")
@click.option("--exact-rows", type=click.IntRange(min=0), metavar="N",
              help="Audit a file of at most N rows from its rows (exact score metrics) [200,000]; larger ones from "
                   "merged count tables and score histograms.")
@click.option("--engine", type=click.Choice(["embedded", "spark"]),
              help="Read the predictions here, batch by batch [embedded], or aggregate them on Apache Spark.")
@click.option("--spark-master", metavar="URL", help="Spark master with --engine spark [local[*]], e.g. spark://host:7077.")
@click.option("--sensitive", help="Sensitive column(s), comma-separated; several also give intersections.")
@click.option("--drop-missing", is_flag=True,
              help="Leave out rows with a missing label, prediction, score or weight, counted in the report "
                   "(default: refuse them).")
@click.option("--reference", multiple=True, metavar="COL=VALUE",
              help="Reference group for to_reference disparities (repeatable).")
@click.option("--impact-threshold", type=float, help="Four-fifths rule threshold [0.8].")
@click.option("--n-boot", type=int, help="Bootstrap resamples [1000], at most 100,000 (0: no intervals).")
@click.option("--seed", type=int, help="Seed of the bootstrap [0].")
@click.option("--min-group-size", type=int, help="Flag groups with fewer rows [30].")
@click.option("--name", help="Audit name (report title) for a predictions audit.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (default reports/NAME for a spec).")
@click.option("--fresh", is_flag=True, help="Ignore caches: train task prompts and fixture models again (and do not cache them), "
                                           "and recompute the audit and every mitigation instead of reusing the last run's.")
@row_options
@click.pass_context
def audit(ctx: click.Context, spec: Path | None, predictions: Path | None, label: str | None, prediction: str | None,
          score: str | None, weight: str | None, positive_label: str | None, score_threshold: float | None,
          score_scale: str | None, exact_rows: int | None, engine: str | None, spark_master: str | None, sensitive: str | None,
          drop_missing: bool, reference: tuple[str, ...], impact_threshold: float | None,
          n_boot: int | None, seed: int | None, min_group_size: int | None, name: str | None, out: Path | None,
          fresh: bool, no_row_output: bool, final: bool) -> None:
    """Audit a model or a predictions file: metrics by group with CIs, results.json and report.html.

    A spec's `mitigations:` (fairij, reprogram) run after the audit, which is written first.  A run with a model
    also writes predictions.parquet: every decision of the audited model and of each repair's grid point on the
    validation and test rows (--no-row-output: none; --final: also the final split, for the one final judgement).

    Either give a YAML SPEC (see audits/; a spec with a model block trains or loads
    the model, predicts its test split and audits it), or a predictions file with its columns:

        fairprompt audit --predictions preds.csv --label y --prediction yhat --sensitive sex,race --out reports/mine
    """
    from fairprompt import pipeline
    from fairprompt.spec import load_spec, parse_spec

    overrides = {k: v for k, v in dict(impact_threshold=impact_threshold, n_boot=n_boot, seed=seed,
                                       min_group_size=min_group_size).items() if v is not None}
    if reference:
        overrides["reference"] = _references(reference)
    if sensitive:
        overrides["sensitive"] = _split_columns(sensitive)
    if prediction is not None and score_threshold is not None:
        raise FairpromptError(f"give either --prediction {prediction} or --score-threshold {score_threshold:g} (which "
                              "makes predictions from --score), not both")
    if spec is None and final:
        raise FairpromptError("--final reads a spec's final split (model.splits.final); a predictions file has none, "
                              "so drop --final")
    if spec is not None:
        if predictions is not None:
            raise FairpromptError("give either a SPEC file or --predictions, not both")
        ignored = [flag for flag, value in (("--label", label), ("--prediction", prediction), ("--score", score),
                                            ("--weight", weight), ("--positive-label", positive_label),
                                            ("--score-threshold", score_threshold), ("--score-scale", score_scale),
                                            ("--exact-rows", exact_rows), ("--engine", engine), ("--spark-master", spark_master),
                                            ("--name", name)) if value is not None]
        if ignored:
            raise FairpromptError(f"{', '.join(ignored)} describe a --predictions file; with a SPEC, set them in {spec} "
                                  "(its 'predictions' block, or 'name')")
        loaded = load_spec(spec)
        if drop_missing and loaded.predictions is None:
            raise FairpromptError(f"--drop-missing leaves out rows of a predictions file; {spec} has no 'predictions' "
                                  "block (a data set with missing labels must be filled or cleaned first)")
        if overrides or drop_missing:
            raw = loaded.model_dump(mode="json", exclude_unset=True)
            raw["audit"] = {**raw.get("audit", {}), **overrides}
            if drop_missing:
                raw["predictions"] = {**raw["predictions"], "drop_missing": True}
            loaded = parse_spec(raw, source=f"{spec} with command-line options", file=loaded.file)
    else:
        if predictions is None:
            raise FairpromptError("give a SPEC file (e.g. audits/adult_baseline.yaml) or --predictions FILE with --label, "
                                  "--prediction and --sensitive")
        missing = [flag for flag, value in (("--label", label), ("--sensitive", sensitive)) if not value]
        if prediction is None and (score is None or score_threshold is None):
            missing.append("--prediction (or --score with --score-threshold)")
        if missing:
            raise FairpromptError(f"--predictions needs {', '.join(missing)}; name the columns of {predictions}")
        if out is None:
            raise FairpromptError("--predictions needs --out DIR, the directory for results.json and report.html")
        raw = {
            "name": name or re.sub(r"[^\w.-]+", "_", predictions.stem.split(".")[0]).strip("_") or "predictions",
            "predictions": {k: v for k, v in dict(path=str(predictions), label=label, prediction=prediction, score=score,
                                                  weight=weight, positive_label=positive_label,
                                                  score_threshold=score_threshold, score_scale=score_scale,
                                                  exact_rows=exact_rows, engine=engine,
                                                  spark_master=spark_master).items() if v is not None}
            | ({"drop_missing": True} if drop_missing else {}),
            "audit": overrides,
        }
        loaded = parse_spec(raw, source="command line")
    with _progress(ctx.obj["quiet"]) as progress:
        output = pipeline.run(loaded, out_dir=out, command=["fairprompt", *sys.argv[1:]], progress=progress,
                              use_cache=not fresh, row_output=not no_row_output, final=final)
    _say_outputs(ctx, output)
    _say_dropped(ctx, output.results.get("data") or {})


def _warn(ctx: click.Context, message: str) -> None:
    if not ctx.obj.get("quiet"):
        click.echo(f"warning: {message}", err=True)


def _say_outputs(ctx: click.Context, output: Any) -> None:
    degenerate = ((output.results.get("audit") or {}).get("degenerate") or {})
    if degenerate.get("degenerate"):
        reasons = "; ".join(r.get("message", "") for r in degenerate.get("reasons") or [])
        _warn(ctx, f"the audited model is degenerate ({reasons}); every verdict is REVIEW"
                   + ("; the repairs ran on it all the same" if output.results.get("mitigations") else ""))
    _say(ctx, f"report: {output.report_path}")
    if (output.out_dir / "compliance.html").is_file():
        _say(ctx, f"compliance: {output.out_dir / 'compliance.html'}")
    if output.results.get("schema") == "fairprompt.decision_audit":
        resolved = output.results.get("resolved") or []
        _say(ctx, f"discrimination scores: {output.csv_path}; resolved by the intervals: "
                  f"{', '.join(resolved) if resolved else 'none'}")
        for warning in (output.results.get("discrimination") or {}).get("warnings") or []:
            _warn(ctx, warning)
    _say(ctx, f"results: {output.results_path}")
    decisions = output.results.get("decisions")
    if decisions:
        final = ", final split included (--final)" if decisions.get("final_read") else ""
        _say(ctx, f"decisions: {output.out_dir / decisions['file']} ({decisions['rows']:,} rows{final})")
    if output.reused:
        _say(ctx, f"reused from the last run (same spec, data, model and version; --fresh recomputes): "
                  f"{', '.join(output.reused)}")
    for record in output.mitigations:
        files = record.get("outputs") or {}
        if record["name"] == "reprogram":
            info = record.get("reprogram") or {}
            _say(ctx, f"reprogram: {info.get('trigger_kind')} trigger, lambda {info.get('chosen_lambda')} chosen"
                      f"{'' if info.get('rule_met') else ' (no lambda met the accuracy rule)'}; trigger: "
                      f"{output.out_dir / files.get('artifact_dir', '')}")
            for warning in info.get("warnings") or []:
                _say(ctx, f"reprogram warning: {warning}")
            continue
        chosen = (record.get("fairij") or {}).get("chosen_k")
        _say(ctx, f"{record['name']}: {chosen} training rows down-weighted; influence: "
                  f"{output.out_dir / files.get('influence_csv', '')}; repaired prompt: "
                  f"{output.out_dir / files.get('artifact_dir', '')}")


def _say_dropped(ctx: click.Context, data: dict[str, Any]) -> None:
    dropped = data.get("rows_dropped")
    if dropped:
        columns = ", ".join(f"{column} {count:,}" for column, count in (data.get("dropped_missing") or {}).items())
        _say(ctx, f"dropped: {dropped:,} of {data.get('rows'):,} rows had a missing value ({columns}) and were left out "
                  "(--drop-missing)")


@cli.group()
def mitigate() -> None:
    """Repair a frozen model through prompts only, after its audit (writes into the audit's report directory)."""


@mitigate.command("fairij")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output directory (default reports/NAME).")
@click.option("--fresh", is_flag=True, help="Retrain the task prompt (ignore the cache) and recompute the before-audit.")
@click.pass_context
@row_options
def mitigate_fairij(ctx: click.Context, spec: Path, out: Path | None, fresh: bool, no_row_output: bool,
                    final: bool) -> None:
    """Run only FairIJ for a frozen_text SPEC: score training rows by their influence on unfairness,
    down-weight the harmful ones, repair the task prompt, and audit the repaired model on the test split.

    Uses the spec's `fairij` settings from `mitigations:` (defaults when it names none), the cached or
    shipped task prompt, and the before-audit already in the output directory when it was written for
    the same spec (else computes it first).  Writes influence.csv, fairij/ and the `mitigations` block
    of results.json into the same directory:

        fairprompt mitigate fairij audits/adult_income.yaml
    """
    _mitigate(ctx, "fairij", spec, out=out, fresh=fresh, row_output=not no_row_output, final=final)


@mitigate.command("reprogram")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output directory (default reports/NAME).")
@click.option("--fresh", is_flag=True,
              help="Retrain the task prompt or fixture (ignore the cache) and recompute the before-audit.")
@click.pass_context
@row_options
def mitigate_reprogram(ctx: click.Context, spec: Path, out: Path | None, fresh: bool, no_row_output: bool,
                       final: bool) -> None:
    """Run only FairReprogram for a frozen_text or frozen_image SPEC: train a fairness trigger (text tokens, a
    pixel border or patch) per lambda in front of the frozen model, choose one on the validation split, and
    audit the triggered model on the test split.

    Uses the spec's `reprogram` settings from `mitigations:` (defaults when it names none) and the
    before-audit already in the output directory when it was written for the same spec (else computes it
    first).  Writes reprogram/ (trigger.safetensors + trigger.json, reprogram.json) and the `mitigations`
    block of results.json into the same directory:

        fairprompt mitigate reprogram audits/colored_digits.yaml
    """
    _mitigate(ctx, "reprogram", spec, out=out, fresh=fresh, row_output=not no_row_output, final=final)


def _mitigate(ctx: click.Context, name: str, spec: Path, *, out: Path | None, fresh: bool, row_output: bool,
              final: bool) -> None:
    from fairprompt import pipeline
    from fairprompt.spec import load_spec, parse_spec

    loaded = load_spec(spec)
    if not any(m.name == name for m in loaded.mitigations):
        raw = loaded.model_dump(mode="json", exclude_unset=True)
        raw["mitigations"] = [*raw.get("mitigations", []), name]
        loaded = parse_spec(raw, source=str(spec), file=loaded.file)
    with _progress(ctx.obj["quiet"]) as progress:
        output = pipeline.mitigate(loaded, names=(name,), out_dir=out, command=["fairprompt", *sys.argv[1:]],
                                   progress=progress, use_cache=not fresh, row_output=row_output, final=final)
    _say_outputs(ctx, output)


@cli.group()
def datasets() -> None:
    """Embedded data sets (offline, vendored with their provenance)."""


@datasets.command("list")
@click.pass_context
def datasets_list(ctx: click.Context) -> None:
    """List the embedded data sets with their rows, label and sensitive columns."""
    from fairprompt.datasets import available

    rows = available()
    header = ("name", "rows", "label (favourable)", "sensitive", "description")
    table = [(i.name, f"{i.rows:,}", f"{i.label} ({i.favourable_label})", ", ".join(i.sensitive), i.description) for i in rows]
    widths = [max(len(str(r[j])) for r in [header, *table]) for j in range(len(header) - 1)]
    for row in [header, *table]:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + "  " + str(row[-1]))


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["html", "compliance"]), default="html", show_default=True,
              help="html: report.html (everything); compliance: compliance.html, the printable impact-ratio tables "
                   "(four-fifths rule, Local Law 144 style) before and after each repair.")
@click.option("--pdf", is_flag=True, help="Also print the page to PDF (report.pdf or compliance.pdf) with headless "
                                          "Chromium ($FAIRPROMPT_CHROMIUM, /usr/bin/chromium, or on PATH).")
@click.pass_context
def report(ctx: click.Context, directory: Path, fmt: str, pdf: bool) -> None:
    """Re-render DIRECTORY/report.html (or compliance.html) from DIRECTORY/results.json alone (no model needed).

    DIRECTORY must be writable and not in use by a running fairprompt; when it has a manifest.json, results.json must
    match it (a run that stopped while writing is named), and the page written is entered into it.

        fairprompt report reports/adult_income --format compliance --pdf
    """
    from fairprompt.atomic import write_text
    from fairprompt.results import load_results
    from fairprompt.run_folder import hold, verify

    with hold(directory, create=False, wait_hint="wait for it to finish, then run `fairprompt report` again") as folder:
        from fairprompt.decision_run import rerender_decision_report

        decision_report = rerender_decision_report(directory, fmt=fmt, pdf=pdf)
        if decision_report is not None:
            folder.record([decision_report.name])
            _say(ctx, f"report: {decision_report}")
            return
        results = load_results(directory)
        check = verify(directory)
        if check.is_stale("results.json"):
            raise FairpromptError(f"{check.describe('results.json')}: the last run into {directory} stopped while "
                                  f"writing; run the audit again into {directory}")
        chromium = None
        if pdf:
            from fairprompt.report.pdf import find_chromium

            chromium = find_chromium()  # before anything is written
        if fmt == "compliance":
            from fairprompt.atomic import file_sha256
            from fairprompt.report.compliance import COMPLIANCE_FILE, render_compliance

            sha256 = file_sha256(directory / "results.json")
            path = write_text(directory / COMPLIANCE_FILE, render_compliance(results, results_sha256=sha256))
            _say(ctx, f"compliance: {path}")
        else:
            from fairprompt.report import render_html

            path = write_text(directory / "report.html", render_html(results))
            _say(ctx, f"report: {path}")
        written = [path.name]
        if pdf:
            from fairprompt.report.pdf import write_pdf

            printed = write_pdf(path, path.with_suffix(".pdf"), chromium=chromium)
            written.append(printed.name)
            _say(ctx, f"pdf: {printed}")
        folder.record(written)
        stale = [name for name in check.stale if name not in written]
        if stale:
            verb, them = ("does", "it") if len(stale) == 1 else ("do", "them")
            click.echo(f"warning: {', '.join(stale)} in {directory} {verb} not match its manifest.json (a run stopped "
                       f"while writing); run the audit again into {directory} to rewrite {them}", err=True)


def main() -> None:
    """Console-script entry point."""
    cli(obj={})


if __name__ == "__main__":
    main()
