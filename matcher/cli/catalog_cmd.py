"""`matcher catalog ...`: validate, summarise and import the institute catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from matcher.catalog import load_catalog
from matcher.cli.options import JsonFlag
from matcher.cli.output import EXIT_INPUT, console, err_console, print_json, user_errors
from matcher.importer import import_table

app = typer.Typer(help="Validate, summarise and import the institute catalog.", no_args_is_help=True)

CatalogDir = Annotated[
    Path, typer.Option("--catalog", "-c", help="Catalog directory of <institute>.yaml files.")
]


@app.command()
def validate(catalog: CatalogDir = Path("data/institutes"), as_json: JsonFlag = False) -> None:
    """Check every catalog file; print every problem with file, line, record and field.

    Exit codes: 0 valid, 2 problems found.
    """
    with user_errors(as_json):
        cat = load_catalog(catalog)
    if as_json:
        print_json(
            {
                "valid": True,
                "institutes": len(cat.institutes),
                "records": len(cat.capabilities),
                "content_hash": cat.content_hash,
            }
        )
    else:
        console.print(
            f"[green]✓[/] 카탈로그 정상: 기관 {len(cat.institutes)}곳, 레코드 {len(cat.capabilities)}건 "
            f"(hash {cat.content_hash})"
        )


def stats_dict(cat) -> dict:
    counts = cat.counts()
    rows = [{"id": i.id, "name_ko": i.name_ko, **counts[i.id]} for i in cat.institutes]
    totals = {"institutes": len(rows)}
    for kind in ("staff", "technology", "equipment"):
        totals[kind] = sum(r[kind] for r in rows)
    return {"institutes": rows, "totals": totals}


@app.command()
def stats(catalog: CatalogDir = Path("data/institutes"), as_json: JsonFlag = False) -> None:
    """Record counts per institute and kind.

    JSON shape: {"institutes": [{"id", "name_ko", "staff", "technology", "equipment"}], "totals": {...}}.
    """
    with user_errors(as_json):
        cat = load_catalog(catalog)
    data = stats_dict(cat)
    if as_json:
        print_json(data)
        return
    table = Table(title=f"카탈로그 ({catalog})")
    for col in ("id", "기관명", "인력", "기술", "장비", "합계"):
        table.add_column(col, justify="right" if col in ("인력", "기술", "장비", "합계") else "left")
    for r in data["institutes"]:
        table.add_row(
            r["id"],
            r["name_ko"],
            str(r["staff"]),
            str(r["technology"]),
            str(r["equipment"]),
            str(r["staff"] + r["technology"] + r["equipment"]),
        )
    t = data["totals"]
    table.add_section()
    table.add_row(
        "합계",
        f"{t['institutes']}개 기관",
        str(t["staff"]),
        str(t["technology"]),
        str(t["equipment"]),
        str(t["staff"] + t["technology"] + t["equipment"]),
    )
    console.print(table)


@app.command("import")
def import_(
    table: Annotated[
        Path, typer.Argument(help="CSV or XLSX file, one record per row (columns: docs/data-formats.md).")
    ],
    catalog: CatalogDir = Path("data/institutes"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and count, write nothing.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Merge staff/technology/equipment rows from a spreadsheet into the catalog files.

    Every good row is merged; every bad row is reported with its row number. Exit codes: 0 all rows
    imported, 2 some rows had problems (the good ones were still imported) or the merged catalog is invalid.
    """
    with user_errors(as_json):
        cat = load_catalog(catalog)
        report = import_table(table, cat, catalog, dry_run=dry_run)
        if not dry_run:
            load_catalog(catalog)
    if as_json:
        print_json(
            {
                "added": report.added,
                "replaced": report.replaced,
                "files": list(report.files),
                "problems": [p.to_dict() for p in report.problems],
                "dry_run": dry_run,
            }
        )
    else:
        verb = "추가 예정" if dry_run else "추가"
        console.print(f"{verb} {report.added}건, 교체 {report.replaced}건 ({len(report.files)}개 파일)")
        for p in report.problems:
            err_console.print(f"[red]✗[/] {p}", highlight=False)
    if report.problems:
        raise typer.Exit(EXIT_INPUT)
