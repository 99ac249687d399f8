"""`matcher catalog ...`: validate, summarise and import the institute catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from matcher.catalog import load_catalog
from matcher.catalog_checks import lint, sourced_counts
from matcher.cli.options import JsonFlag
from matcher.cli.output import EXIT_INPUT, console, err_console, print_json, user_errors
from matcher.importer import import_table
from matcher.schema import KIND_LABEL_KO, KINDS, CapabilityKind

app = typer.Typer(help="Validate, summarise and import the institute catalog.", no_args_is_help=True)

CatalogDir = Annotated[
    Path, typer.Option("--catalog", "-c", help="Catalog directory of <institute>.yaml files.")
]


@app.command()
def validate(
    catalog: CatalogDir = Path("data/institutes"),
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail (exit 2) on warnings too, not only on errors.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Check every catalog file; print every problem with file, line, record and field.

    Then warn on what a desk should not quote: accreditation without a source, a location that is not
    one of the institute's sites, descriptions that near-duplicate another institute's
    (`matcher.catalog_checks`). Exit codes: 0 valid (warnings allowed), 2 problems found (or warnings
    under --strict).
    """
    with user_errors(as_json):
        cat = load_catalog(catalog)
    warnings = lint(cat)
    if as_json:
        print_json(
            {
                "valid": True,
                "institutes": len(cat.institutes),
                "records": len(cat.capabilities),
                "sourced": sum(sourced_counts(cat).values()),
                "content_hash": cat.content_hash,
                "warnings": [w.to_dict() for w in warnings],
            }
        )
    else:
        for w in warnings:
            err_console.print(f"[yellow]![/] {w}", highlight=False, soft_wrap=True)
        console.print(
            f"[green]✓[/] 카탈로그 정상: 기관 {len(cat.institutes)}곳, 레코드 {len(cat.capabilities)}건 "
            f"(hash {cat.content_hash}), 경고 {len(warnings)}건"
        )
    if strict and warnings:
        raise typer.Exit(EXIT_INPUT)


def stats_dict(cat) -> dict:
    counts = cat.counts()
    sourced = sourced_counts(cat)
    rows = [
        {
            "id": i.id,
            "name_ko": i.name_ko,
            **counts[i.id],
            "records": sum(counts[i.id].values()),
            "sourced": sourced[i.id],
        }
        for i in cat.institutes
    ]
    totals = {"institutes": len(rows)}
    for key in (*KINDS, "records", "sourced"):
        totals[key] = sum(r[key] for r in rows)
    return {"institutes": rows, "totals": totals}


@app.command()
def stats(catalog: CatalogDir = Path("data/institutes"), as_json: JsonFlag = False) -> None:
    """Record counts per institute and kind, and how many records cite a source.

    JSON shape: {"institutes": [{"id", "name_ko", "staff", "technology", "equipment", "profile",
    "programme", "records", "sourced"}], "totals": {"institutes", <kinds>, "records", "sourced"}}.
    """
    with user_errors(as_json):
        cat = load_catalog(catalog)
    data = stats_dict(cat)
    if as_json:
        print_json(data)
        return
    table = Table(title=f"카탈로그 ({catalog})")
    table.add_column("id")
    table.add_column("기관명")
    for col in (*(KIND_LABEL_KO[CapabilityKind(k)] for k in KINDS), "합계", "출처 있음"):
        table.add_column(col, justify="right")

    def cells(row: dict) -> list[str]:
        share = row["sourced"] / row["records"] if row["records"] else 0.0
        return [*(str(row[k]) for k in KINDS), str(row["records"]), f"{row['sourced']} ({share:.0%})"]

    for r in data["institutes"]:
        table.add_row(r["id"], r["name_ko"], *cells(r))
    t = data["totals"]
    table.add_section()
    table.add_row("합계", f"{t['institutes']}개 기관", *cells(t))
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
