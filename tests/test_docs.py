"""The documentation as a whole: README.md, CHANGELOG.md and docs/**/*.md. Every relative link resolves, every
module a page runs exists, every `python -m bench ...`, `python -m analyses.<name> ...` and `fss-bench ...`
command a page shows parses as written (placeholders such as <RUN> or NAME substituted), a run directory a
command reads is made by a documented command or its comment says where it comes from, and the listings run.
Parsers are built in this process: the whole file takes a few seconds."""
import contextlib
import importlib
import importlib.util
import io
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

def pages():
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]


def without_code(text):
    return re.sub(r"```.*?```", "", text, flags=re.S)


def relative_links(page):
    """(target, resolved path) of every relative Markdown link and image of `page` (outside code)."""
    for target in re.findall(r"\]\(([^)\s]+)\)", without_code(page.read_text())):
        if re.match(r"[a-z][a-z+.-]*:", target) or target.startswith("#"):
            continue  # http(s):, mailto:, an anchor of the page itself
        yield target, (page.parent / target.split("#", 1)[0]).resolve()


def test_every_relative_link_resolves():
    broken = [f"{page.relative_to(ROOT)}: {target}" for page in pages() for target, path in relative_links(page)
              if not path.exists()]
    assert not broken, broken


def anchors(page):
    """GitHub's anchors of the page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", without_code(page.read_text()), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_anchor_of_a_link_names_a_heading():
    broken = [f"{page.relative_to(ROOT)}: {target}" for page in pages() for target, path in relative_links(page)
              if "#" in target and path.suffix == ".md" and path.exists()
              and target.split("#", 1)[1] not in anchors(path)]
    assert not broken, broken


def test_every_page_is_listed_in_the_index():
    index = (ROOT / "docs" / "README.md").read_text()
    unlisted = [p.relative_to(ROOT / "docs").as_posix() for p in sorted((ROOT / "docs").rglob("*.md"))
                if p.name != "README.md" and f"({p.relative_to(ROOT / 'docs').as_posix()})" not in index]
    assert not unlisted, unlisted


# --- the commands the pages show

def command_lines():
    """(command, comment, page) of every `python -m bench|analyses.<name>` and `fss-bench` line of the pages' bash
    blocks (continuation lines joined, `fss-bench` written as `python -m bench`) and of their inline code;
    `...` elisions and `[optional]` groups left out."""
    out = []
    for page in pages():
        text = page.read_text()
        found = []
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
            for line in re.sub(r"\\\n\s*", "", block).splitlines():
                command, _, comment = line.strip().partition("  #")
                found.append((command.strip(), comment.strip()))
        inline = without_code(text).replace("\n", " ")
        found += [(m, "") for m in re.findall(r"`((?:python -m|fss-bench) [^`]*)`", inline)]
        for command, comment in found:
            command = re.sub(r"\s*\[[^\]]*\]", "", re.sub(r"^fss-bench\b", "python -m bench", command))
            if re.match(r"python -m (bench|analyses\.\w+)( |$)", command) and "..." not in command:
                out.append((command, comment, page.relative_to(ROOT).as_posix()))
    return out


def parser_of(module):
    from bench.cli.commands import build_parser

    return build_parser() if module == "bench" else importlib.import_module(module).build_parser()


def is_placeholder(arg):
    """A single upper-case word (NAME, M, K) or <...> stands for a value the reader chooses."""
    return bool(re.fullmatch(r"[A-Z]|[A-Z]{3,}", arg)) or "<" in arg


def substituted(argv):
    """Placeholders replaced by a value every option takes (`1`: a split, a seed, a name, a path)."""
    return ["1" if re.fullmatch(r"[A-Z]|[A-Z]{3,}", a) else re.sub(r"<[^>]*>", "1", a) for a in argv]


def test_the_pages_show_the_commands():
    commands = command_lines()
    assert len(commands) > 40
    shown = {page for _, _, page in commands}
    assert {"README.md", "docs/running.md", "docs/analyses.md", "docs/regression-check.md"} <= shown


def parses(parser, argv):
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code == 0
    return True


def test_every_documented_command_parses_as_written():
    """As written; a bare `python -m bench <sub>` or `python -m analyses.<name>` named in the text: its --help."""
    refused = []
    parsers = {}
    for command, _, page in command_lines():
        module, *argv = shlex.split(command)[2:]
        parser = parsers.setdefault(module, parser_of(module))
        bare = len(argv) <= (1 if module == "bench" else 0)
        if not (parses(parser, substituted(argv)) or bare and parses(parser, [*argv, "--help"])):
            refused.append(f"{page}: `{command}`")
    assert not refused, "refused by their parsers:\n" + "\n".join(refused)


def test_every_module_the_pages_run_exists():
    text = "\n".join(page.read_text() for page in pages())
    named = set(re.findall(r"python -m ([A-Za-z_][\w.]*)", text))
    modules = {m for m in named if not m.endswith(".")} - {"pip", "venv"}  # `analyses.<name>`: a placeholder
    assert {"bench", "analyses.tsne", "analyses.context"} <= modules
    missing = sorted(m for m in modules if importlib.util.find_spec(m) is None)
    assert not missing, missing


def run_directories_read(argv):
    """The run directories a command reads: --run, --runs, --episodes-from (its run), compare's two."""
    read = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--run", "--episodes-from")]
    return read + (argv[1:3] if argv[:1] == ["compare"] else [])


def test_every_run_directory_a_command_reads_is_made_first_or_explained():
    """`runs/ci` was once shown with nothing saying how it is made (issue 31)."""
    commands = command_lines()
    made = {a[i + 1] for c, _, _ in commands for a in [shlex.split(c)] for i, x in enumerate(a[:-1]) if x == "--out"}
    unexplained = []
    for command, comment, page in commands:
        for folder in run_directories_read(shlex.split(command)[3:]):
            produced = any(folder == out or folder.startswith(out + "/") for out in made)
            if not (produced or "--out" in comment or "printed" in comment or "..." in folder):
                unexplained.append(f"{page}: `{command}` reads {folder}")
    assert not unexplained, "no documented command makes these and no comment says where they come from:\n" \
        + "\n".join(unexplained)


LISTINGS = {"list", "weights", "datasets"}


def listing_commands():
    """The listings that need no data or earlier run and register nothing in this process (no --plugin)."""
    return sorted({c for c, _, _ in command_lines() if c.split()[2] == "bench" and c.split()[3:4]
                   and c.split()[3] in LISTINGS and "--plugin" not in c
                   and not any(is_placeholder(a) for a in c.split()[4:])})


@pytest.mark.parametrize("command", listing_commands())
def test_documented_listings_run(command, capsys):
    """The commands that need no data or earlier run answer as written (exit 0, output)."""
    from bench.cli.commands import main

    assert main(shlex.split(command)[3:]) == 0
    assert capsys.readouterr().out.strip()
