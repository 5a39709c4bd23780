"""A coding-agent cache workload, generated from templates: `deja eval --workload coding`.

What it is for: a coding assistant asks the same small questions over and over in different words
("How do I sort a list in descending order in Python?", "Python: how to sort a list in descending
order"), and a semantic cache should serve those from one cached answer. It must NOT serve that
answer to a question that looks almost the same but needs another one ("... in ascending order",
"... in Rust"). This workload measures both: every request carries its cluster (intent id), the
first ask of a cluster should miss, later asks should hit, and a hit from another cluster is wrong.

How it is built:
- An intent is a task template with one value per slot, e.g. task `sort-list` with order=desc,
  mode=inplace, elem=numbers, language=python -> cluster `sort-list-desc-inplace-numbers-python`.
  46 tasks over 13 languages and ~45 libraries, frameworks, editors and tools give ~1,700 distinct
  intents; the 200 of a default workload are drawn from all tasks.
- Each intent is asked 2-5 times, each time in a different surface form: a question template
  ("How do I X in L?", "L: how to X", ...) times a wording of the task ("sort"/"put ... in order",
  "remove"/"delete"/"drop", ...). All forms of an intent mean the same thing, and every form
  names every slot, so no string can belong to two intents.
- Traps: for ~45% of the clusters the workload also holds a trap sibling, an intent of the same
  task that differs in exactly ONE slot (ascending vs descending, time vs space complexity, bytes
  vs bits, Celsius->Fahrenheit vs the reverse, Python vs Rust, 5 vs 50, enable vs disable, sync
  vs async, with vs without a library, "should" vs "should not" ...), asked with the SAME
  templates and wording as its sibling so the two strings differ only in that slot's words.
  Every other intent differs from all intents of its task in at least two slots, so the trap
  share is what the generator designs, not an accident of sampling (see `trap_pairs`). The slot
  space has room for that up to ~230 intents; beyond, the extra intents are one-slot neighbours
  of others, so the trap share grows with n_intents.
- The requests are shuffled with `random.Random(seed)`; whichever ask of a cluster comes first is
  its first ask. Nothing outside that generator is random: a seed always gives the same list.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

TRAP_SHARE = 0.45  # designed share of clusters that have a trap sibling in the workload
MIN_ASKS, MAX_ASKS = 2, 5

# Question templates for how-to tasks: {a} is the task's wording ("sort a list in descending order"),
# {A} the same capitalized, {prep} {ctx} its context ("in Python", "with pandas", "in git").
_HOWTO = (
    "How do I {a} {prep} {ctx}?",
    "What's the best way to {a} {prep} {ctx}?",
    "{ctx}: how to {a}",
    "Can you show me how to {a} using {ctx}?",
    "{A} {prep} {ctx} — example please",
    "I need to {a} {prep} {ctx}. How?",
    "How can I {a} {prep} {ctx}?",
    "How would you {a} {prep} {ctx}?",
    "Show me how to {a} {prep} {ctx}.",
)

# ctx, list noun, list with article, dict noun (plural), dict with article: tasks say "a vector" in
# Rust and "a slice" in Go, so the wording is natural while the slot stays "language".
_LANGUAGES = {
    "python": ("Python", "list", "a list", "dictionaries", "a dictionary"),
    "javascript": ("JavaScript", "array", "an array", "objects", "an object"),
    "typescript": ("TypeScript", "array", "an array", "objects", "an object"),
    "go": ("Go", "slice", "a slice", "maps", "a map"),
    "rust": ("Rust", "vector", "a vector", "HashMaps", "a HashMap"),
    "java": ("Java", "list", "a list", "maps", "a map"),
    "cpp": ("C++", "vector", "a vector", "maps", "a map"),
    "csharp": ("C#", "list", "a list", "dictionaries", "a dictionary"),
    "ruby": ("Ruby", "array", "an array", "hashes", "a hash"),
    "kotlin": ("Kotlin", "list", "a list", "maps", "a map"),
    "swift": ("Swift", "array", "an array", "dictionaries", "a dictionary"),
    "php": ("PHP", "array", "an array", "associative arrays", "an associative array"),
    "c": ("C", "array", "an array", "hash tables", "a hash table"),
}

Fields = dict[str, str]


def _langs(*slugs: str) -> dict[str, Fields]:
    out = {}
    for slug in slugs:
        name, noun, a_noun, dicts, a_dict = _LANGUAGES[slug]
        out[slug] = {"ctx": name, "prep": "in", "list": noun, "alist": a_noun, "dicts": dicts, "adict": a_dict}
    return out


def _ctx(prep: str, **names: str) -> dict[str, Fields]:
    """A library/tool/framework axis: slug=display name, all used with the same preposition."""
    return {slug: {"ctx": name, "prep": prep} for slug, name in names.items()}


def _words(name: str, **values: str) -> dict[str, Fields]:
    """A plain axis whose value is rendered by one word or phrase under the axis's own name."""
    return {slug: {name: text} for slug, text in values.items()}


@dataclass
class _Task:
    key: str
    phrases: tuple[str, ...]  # how-to: wordings of the task; fact: whole questions
    axes: tuple[tuple[str, dict[str, Fields]], ...]  # slot name -> value slug -> template fields
    traps: tuple[str, ...]  # the slots a trap sibling may flip: only where the answer really changes
    fact: bool = False  # a question on its own, no "in <language>" context
    fixed: Fields = field(default_factory=dict)  # context shared by all intents (e.g. git)


_TASKS = (
    _Task(
        "sort-list",
        (
            "sort {alist} of {elem} in {order} order {mode}",
            "put {alist} of {elem} in {order} order {mode}",
            "arrange the items of {alist} of {elem} in {order} order {mode}",
        ),
        (
            ("order", _words("order", asc="ascending", desc="descending")),
            ("mode", _words("mode", inplace="in place", copy="into a new {list}")),
            ("elem", _words("elem", numbers="numbers", objects="objects by one of their fields")),
            ("language", _langs("python", "javascript", "typescript", "java", "rust", "go", "cpp", "csharp", "ruby")),
        ),
        ("order", "mode", "elem", "language"),
    ),
    _Task(
        "str-number",
        ("convert {src} to {dst}", "turn {src} into {dst}", "change {src} into {dst}"),
        (
            # Two-pass fields: the direction places the number type ({num}) on one side.
            ("direction", {"s2n": {"src": "a string", "dst": "{num}"}, "n2s": {"src": "{num}", "dst": "a string"}}),
            ("num", _words("num", int="an integer", float="a floating-point number")),
            ("language", _langs("python", "javascript", "java", "go", "rust", "cpp", "csharp", "kotlin", "swift")),
        ),
        ("direction", "num", "language"),
    ),
    _Task(
        "json",
        ("convert {src} into {dst}", "turn {src} into {dst}", "go from {src} to {dst}"),
        (
            (
                "direction",
                {
                    "parse": {"src": "a JSON string", "dst": "{target}"},
                    "dump": {"src": "{target}", "dst": "a JSON string"},
                },
            ),
            ("target", _words("target", plain="a plain object", typed="an instance of my own class")),
            ("language", _langs("python", "javascript", "go", "rust", "java", "csharp", "swift", "kotlin", "php")),
        ),
        ("direction", "target", "language"),
    ),
    _Task(
        "linked-list",
        (
            "reverse a {kind} linked list {method}",
            "{method} reverse a {kind} linked list",
            "reverse the nodes of a {kind} linked list {method}",
        ),
        (
            ("kind", _words("kind", singly="singly", doubly="doubly")),
            ("method", _words("method", iter="iteratively", rec="recursively")),
            ("language", _langs("cpp", "java", "python", "rust", "go", "c", "javascript", "csharp")),
        ),
        ("kind", "method", "language"),
    ),
    _Task(
        "dedupe",
        (
            "remove duplicate {items} from {alist} while keeping the {which} occurrence of each",
            "delete duplicate {items} from {alist} but keep the {which} occurrence of each",
            "drop duplicate {items} from {alist}, keeping the {which} occurrence of each one",
        ),
        (
            ("which", _words("which", first="first", last="last")),
            ("items", _words("items", values="values", records="records that share an id field")),
            (
                "language",
                _langs("python", "javascript", "java", "ruby", "go", "rust", "csharp", "kotlin", "php", "typescript"),
            ),
        ),
        ("which", "items", "language"),
    ),
    _Task(
        "merge-dicts",
        (
            "{depth} merge two {dicts}, with the {win} one winning on conflicts",
            "merge two {dicts} {depth}, letting the {win} one win on duplicate keys",
            "combine two {dicts} {depth} so the {win} one takes precedence on conflicts",
        ),
        (
            ("depth", _words("depth", shallow="shallowly", deep="deeply")),
            ("win", _words("win", first="first", second="second")),
            (
                "language",
                _langs("python", "javascript", "typescript", "ruby", "go", "java", "csharp", "kotlin", "swift"),
            ),
        ),
        ("depth", "win", "language"),
    ),
    _Task(
        "temperature",
        (
            "convert {what} from {src} to {dst}",
            "change {what} from {src} to {dst}",
            "turn {what} in {src} into {dst}",
        ),
        (
            (
                "direction",
                {
                    "c2f": {"src": "Celsius", "dst": "Fahrenheit"},
                    "f2c": {"src": "Fahrenheit", "dst": "Celsius"},
                },
            ),
            ("what", _words("what", one="a temperature", many="a whole {list} of temperatures")),
            ("language", _langs("rust", "python", "javascript", "go", "java", "c", "cpp", "csharp", "swift", "kotlin")),
        ),
        ("direction", "what", "language"),
    ),
    _Task(
        "csv",
        ("{op} a CSV file {header}", "{op} CSV data {header}", "{op} a .csv file {header}"),
        (
            ("op", _words("op", read="read", write="write")),
            ("header", _words("header", header="with a header row", noheader="without a header row")),
            (
                "library",
                _ctx(
                    "with",
                    pandas="pandas",
                    polars="polars",
                    pycsv="Python's csv module",
                    gocsv="Go's encoding/csv package",
                    rustcsv="the Rust csv crate",
                    commonscsv="Apache Commons CSV",
                    papaparse="Papa Parse",
                    csvhelper="CsvHelper",
                ),
            ),
        ),
        ("op", "header", "library"),
    ),
    _Task(
        "db-connect",
        (
            "connect to a {db} database {pool}",
            "open a connection to {db} {pool}",
            "set up a {db} connection {pool}",
        ),
        (
            ("db", _words("db", postgres="PostgreSQL", mysql="MySQL", sqlite="SQLite")),
            ("pool", _words("pool", pooled="through a connection pool", direct="without a connection pool")),
            (
                "client",
                _ctx(
                    "with",
                    sqlalchemy="SQLAlchemy",
                    prisma="Prisma",
                    gorm="GORM",
                    diesel="Diesel",
                    jdbc="JDBC",
                    sequelize="Sequelize",
                    efcore="Entity Framework Core",
                    typeorm="TypeORM",
                ),
            ),
        ),
        ("db", "pool", "client"),
    ),
    _Task(
        "cors",
        (
            "enable CORS {scope} {where}",
            "turn on CORS {scope} {where}",
            "allow cross-origin requests {scope} {where}",
        ),
        (
            ("scope", _words("scope", all="for all origins", one="for only one specific origin")),
            ("where", _words("where", app="on every route", route="on a single route")),
            (
                "framework",
                _ctx(
                    "in",
                    express="Express",
                    flask="Flask",
                    fastapi="FastAPI",
                    django="Django",
                    spring="Spring Boot",
                    aspnet="ASP.NET Core",
                    rails="Rails",
                    gin="Gin",
                    nestjs="NestJS",
                ),
            ),
        ),
        ("scope", "where", "framework"),
    ),
    _Task(
        "csrf",
        (
            "{verb} CSRF protection {where}",
            "{verb2} CSRF protection {where}",
            "{verb} cross-site request forgery protection {where}",
        ),
        (
            (
                "toggle",
                {
                    "enable": {"verb": "enable", "verb2": "turn on"},
                    "disable": {"verb": "disable", "verb2": "turn off"},
                },
            ),
            ("where", _words("where", app="for the whole app", view="for a single view")),
            (
                "framework",
                _ctx(
                    "in",
                    django="Django",
                    flask="Flask",
                    rails="Rails",
                    spring="Spring Security",
                    laravel="Laravel",
                    aspnet="ASP.NET Core",
                    express="Express",
                ),
            ),
        ),
        ("toggle", "where", "framework"),
    ),
    _Task(
        "http-request",
        (
            "make an HTTP {method} request {auth} {style}",
            "send an HTTP {method} request {auth} {style}",
            "{style} make an HTTP {method} request {auth}",
        ),
        (
            ("method", _words("method", get="GET", post="POST")),
            ("auth", _words("auth", none="", bearer="with a bearer token")),
            ("style", _words("style", **{"sync": "synchronously", "async": "asynchronously"})),
            ("language", _langs("python", "javascript", "go", "rust", "java", "csharp", "kotlin", "ruby", "swift")),
        ),
        ("method", "auth", "style", "language"),
    ),
    _Task(
        "cli-args",
        (
            "parse {kind} from the command line {dep}",
            "read {kind} from the command line {dep}",
            "handle {kind} passed on the command line {dep}",
        ),
        (
            ("kind", _words("kind", flags="named flags like --verbose", positional="positional arguments")),
            ("dep", _words("dep", lib="with a third-party library", nolib="without any third-party library")),
            ("language", _langs("python", "rust", "go", "javascript", "java", "cpp", "csharp", "c")),
        ),
        ("kind", "dep", "language"),
    ),
    _Task(
        "take-n",
        (
            "get the {pos} {n} elements of {alist}",
            "take the {pos} {n} items from {alist}",
            "grab the {pos} {n} elements of {alist}",
        ),
        (
            ("pos", _words("pos", first="first", last="last")),
            ("n", _words("n", **{"3": "3", "5": "5", "10": "10", "50": "50"})),
            ("language", _langs("python", "javascript", "java", "rust", "go", "ruby", "csharp", "kotlin", "cpp")),
        ),
        ("pos", "n", "language"),
    ),
    _Task(
        "read-lines",
        (
            "read {source} line by line {style} {blank}",
            "process {source} one line at a time {style} {blank}",
            "go through {source} line by line {style} {blank}",
        ),
        (
            ("source", _words("source", file="a text file", stdin="standard input")),
            ("blank", _words("blank", keep="", skip="skipping empty lines")),
            ("style", _words("style", **{"sync": "synchronously", "async": "asynchronously"})),
            ("language", _langs("javascript", "python", "rust", "go", "java", "csharp", "kotlin", "ruby")),
        ),
        ("source", "blank", "style", "language"),
    ),
    _Task(
        "affix",
        (
            "check whether a string {verb} another string, {case}",
            "test if a string {verb} a given substring, {case}",
            "find out if a string {verb} some text, {case}",
        ),
        (
            ("pos", _words("verb", start="starts with", end="ends with")),
            ("case", _words("case", sens="case-sensitively", insens="ignoring case")),
            ("language", _langs("python", "javascript", "java", "go", "rust", "csharp", "ruby", "php", "cpp")),
        ),
        ("pos", "case", "language"),
    ),
    _Task(
        "letter-case",
        ("convert {scope} to {target}", "change {scope} to {target}", "make {scope} {target}"),
        (
            ("target", _words("target", upper="uppercase", lower="lowercase")),
            ("scope", _words("scope", all="a whole string", first="only the first letter of a string")),
            ("language", _langs("python", "javascript", "java", "go", "rust", "csharp", "ruby", "php", "swift")),
        ),
        ("target", "scope", "language"),
    ),
    _Task(
        "date-shift",
        ("{verb} {n} {prep2} a date", "{verb} {n} {prep2} a given date", "{verb} {n} {prep2} a date value"),
        (
            (
                "op",
                {
                    "add": {"verb": "add", "prep2": "to"},
                    "sub": {"verb": "subtract", "prep2": "from"},
                },
            ),
            ("n", _words("n", **{"1": "1 day", "7": "7 days", "30": "30 days"})),
            ("language", _langs("java", "python", "javascript", "go", "rust", "csharp", "kotlin", "php", "swift")),
        ),
        ("op", "n", "language"),
    ),
    _Task(
        "round",
        (
            "round a number {dir} to {n} decimal places",
            "round a float {dir} to {n} decimal places",
            "round a decimal value {dir} to {n} places after the decimal point",
        ),
        (
            ("dir", _words("dir", up="up", down="down")),
            ("n", _words("n", **{"2": "2", "3": "3", "4": "4"})),
            ("language", _langs("python", "javascript", "java", "csharp", "go", "rust", "php", "ruby", "swift")),
        ),
        ("dir", "n", "language"),
    ),
    _Task(
        "env-var",
        ("{verb} an environment variable", "{verb2} the value of an environment variable", "{verb} an env var"),
        (
            (
                "op",
                {
                    "get": {"verb": "read", "verb2": "get"},
                    "set": {"verb": "set", "verb2": "assign"},
                },
            ),
            ("language", _langs("python", "javascript", "go", "rust", "java", "csharp", "ruby", "php", "c")),
        ),
        ("op", "language"),
    ),
    _Task(
        "sleep",
        ("sleep for {n} {unit}", "pause execution for {n} {unit}", "wait {n} {unit} before continuing"),
        (
            ("n", _words("n", **{"2": "2", "5": "5", "50": "50"})),
            ("unit", _words("unit", s="seconds", ms="milliseconds")),
            ("language", _langs("python", "javascript", "go", "rust", "java", "csharp", "cpp", "ruby", "kotlin")),
        ),
        ("n", "unit", "language"),
    ),
    _Task(
        "git-undo",
        ("undo {count} {keep} {pushed}", "roll back {count} {keep} {pushed}", "get rid of {count} {keep} {pushed}"),
        (
            (
                "count",
                _words("count", **{"1": "the last commit", "2": "the last two commits", "3": "the last three commits"}),
            ),
            ("keep", _words("keep", keep="but keep the changes", discard="and throw away the changes")),
            (
                "pushed",
                _words("pushed", local="on a branch I haven't pushed yet", pushed="on a branch I already pushed"),
            ),
        ),
        ("count", "keep", "pushed"),
        fixed={"ctx": "git", "prep": "in"},
    ),
    _Task(
        "git-branch",
        ("{op} {where}", "{op} {where} from the command line", "{op} {where} from the terminal"),
        (
            ("op", _words("op", delete="delete", rename="rename")),
            ("where", _words("where", local="a local branch", remote="a remote branch")),
        ),
        ("op", "where"),
        fixed={"ctx": "git", "prep": "in"},
    ),
    _Task(
        "docker",
        ("{op} all {state} containers", "{op} every {state} container", "{op} all the containers that are {state}"),
        (
            ("op", _words("op", list="list", remove="remove")),
            ("state", _words("state", running="running", stopped="stopped")),
        ),
        ("op", "state"),
        fixed={"ctx": "Docker", "prep": "in"},
    ),
    _Task(
        "editor-line",
        ("{op} {target}", "{op} {target} with a keyboard shortcut", "quickly {op} {target}"),
        (
            ("op", _words("op", delete="delete", duplicate="duplicate", comment="comment out")),
            ("target", _words("target", line="the current line", selection="the selected lines")),
            (
                "editor",
                _ctx(
                    "in", vim="Vim", vscode="VS Code", emacs="Emacs", intellij="IntelliJ IDEA", sublime="Sublime Text"
                ),
            ),
        ),
        ("op", "target", "editor"),
    ),
    _Task(
        "key-exists",
        (
            "check if {adict} contains a given {what}, {case}",
            "test whether a {what} exists in {adict}, {case}",
            "find out if {adict} has a certain {what}, {case}",
        ),
        (
            ("what", _words("what", key="key", value="value")),
            ("case", _words("case", sens="case-sensitively", insens="ignoring case")),
            ("language", _langs("python", "javascript", "java", "go", "rust", "csharp", "ruby", "php", "kotlin")),
        ),
        ("what", "case", "language"),
    ),
    _Task(
        "count-occurrences",
        (
            "count how many times {target} appears in a string, {case}",
            "count the occurrences of {target} in a string, {case}",
            "find the number of times {target} occurs in a string, {case}",
        ),
        (
            ("target", _words("target", char="a character", word="a word")),
            ("case", _words("case", sens="case-sensitively", insens="ignoring case")),
            ("language", _langs("python", "javascript", "java", "go", "rust", "csharp", "ruby", "cpp", "swift")),
        ),
        ("target", "case", "language"),
    ),
    _Task(
        "split-string",
        ("split a string {sep}, {empty}", "split up a string {sep}, {empty}", "break up a string {sep}, {empty}"),
        (
            ("sep", _words("sep", comma="by commas", ws="on whitespace", newline="into lines")),
            ("empty", _words("empty", keep="keeping empty parts", drop="dropping empty parts")),
            ("language", _langs("python", "javascript", "java", "go", "rust", "csharp", "ruby", "cpp", "c")),
        ),
        ("sep", "empty", "language"),
    ),
    _Task(
        "background",
        ("run a function {unit} {wait}", "execute a function {unit} {wait}", "start a function {unit} {wait}"),
        (
            ("unit", _words("unit", thread="in a background thread", process="in a separate process")),
            ("wait", _words("wait", wait="and wait for it to finish", nowait="without waiting for it to finish")),
            ("language", _langs("python", "java", "csharp", "rust", "cpp", "ruby", "kotlin", "c")),
        ),
        ("unit", "wait", "language"),
    ),
    _Task(
        "iterate-dict",
        (
            "iterate over the {part} of {adict} {order}",
            "loop through the {part} of {adict} {order}",
            "go through the {part} of {adict} one by one, {order}",
        ),
        (
            ("part", _words("part", keys="keys", values="values", items="keys and values")),
            ("order", _words("order", stored="in whatever order they are stored", sorted="sorted by key")),
            ("language", _langs("python", "javascript", "java", "go", "rust", "csharp", "ruby", "php", "swift")),
        ),
        ("part", "order", "language"),
    ),
    _Task(
        "dependency",
        ("{verb} {kind} {prep2} my project", "{verb} {kind} {prep2} an existing project"),
        (
            (
                "op",
                {
                    "add": {"verb": "add", "prep2": "to"},
                    "remove": {"verb": "remove", "prep2": "from"},
                },
            ),
            ("kind", _words("kind", regular="a regular dependency", dev="a dev dependency")),
            (
                "manager",
                _ctx(
                    "with",
                    npm="npm",
                    yarn="Yarn",
                    pnpm="pnpm",
                    poetry="Poetry",
                    uv="uv",
                    cargo="Cargo",
                    bundler="Bundler",
                    composer="Composer",
                ),
            ),
        ),
        ("op", "kind", "manager"),
    ),
    _Task(
        "random-int",
        (
            "generate a random integer between {lo} and {hi}",
            "get a random whole number from {lo} to {hi}",
            "pick a random int between {lo} and {hi}",
        ),
        (
            ("lo", _words("lo", **{"0": "0", "1": "1"})),
            ("hi", _words("hi", **{"6": "6", "10": "10", "100": "100"})),
            ("language", _langs("python", "javascript", "java", "go", "rust", "csharp", "ruby", "cpp", "php")),
        ),
        ("lo", "hi", "language"),
    ),
    _Task(
        "string-length",
        (
            "get the length of a string {unit}",
            "find out how long a string is {unit}",
            "measure a string's length {unit}",
        ),
        (
            ("unit", _words("unit", bytes="in bytes", chars="in characters")),
            ("language", _langs("python", "go", "rust", "javascript", "java", "csharp", "swift", "ruby", "cpp")),
        ),
        ("unit", "language"),
    ),
    _Task(
        "sql-top-n",
        (
            "select the top {n} rows of a table ordered by a column in {order} order",
            "get the first {n} rows of a table sorted by a column in {order} order",
            "fetch {n} rows from a table, ordered by one column in {order} order",
        ),
        (
            ("n", _words("n", **{"5": "5", "10": "10", "50": "50"})),
            ("order", _words("order", asc="ascending", desc="descending")),
            (
                "dialect",
                _ctx(
                    "in",
                    postgres="PostgreSQL",
                    mysql="MySQL",
                    sqlserver="SQL Server",
                    sqlite="SQLite",
                    oracle="Oracle",
                ),
            ),
        ),
        ("n", "order", "dialect"),
    ),
    _Task(
        "base64",
        ("{verb} a string {dir} {b64}", "{verb} text {dir} {b64}", "{verb} a piece of text {dir} {b64}"),
        (
            ("op", {"encode": {"verb": "encode", "dir": "to"}, "decode": {"verb": "decode", "dir": "from"}}),
            ("variant", _words("b64", std="standard Base64", url="URL-safe Base64")),
            ("language", _langs("python", "javascript", "java", "go", "rust", "csharp", "ruby", "php", "kotlin")),
        ),
        ("op", "variant", "language"),
    ),
    _Task(
        "hash",
        (
            "compute the {algo} hash of {input}",
            "calculate the {algo} hash of {input}",
            "get the {algo} digest of {input}",
        ),
        (
            ("algo", _words("algo", md5="MD5", sha1="SHA-1", sha256="SHA-256")),
            ("input", _words("input", string="a string", file="a large file")),
            ("language", _langs("python", "javascript", "java", "go", "rust", "csharp", "ruby", "php", "swift")),
        ),
        ("algo", "input", "language"),
    ),
    _Task(
        "file-op",
        ("{act}", "{act} at a given path", "{act} on disk"),
        (
            # Two-pass fields: the action names the kind of path ({akind}).
            (
                "op",
                {
                    "exists": {"act": "check whether {akind} exists"},
                    "create": {"act": "create {akind}"},
                    "delete": {"act": "delete {akind}"},
                },
            ),
            ("kind", _words("akind", file="a file", dir="a directory")),
            ("language", _langs("python", "javascript", "java", "go", "rust", "csharp", "ruby", "cpp", "kotlin")),
        ),
        ("op", "kind", "language"),
    ),
    _Task(
        "list-files",
        (
            "list all {filter} in a directory {depth}",
            "get every {filter} in a folder {depth}",
            "enumerate the {filter} in a directory {depth}",
        ),
        (
            ("filter", _words("filter", all="files", ext="files with a given extension")),
            ("depth", _words("depth", flat="without looking into subdirectories", rec="including all subdirectories")),
            ("language", _langs("python", "javascript", "java", "go", "rust", "csharp", "ruby", "cpp", "kotlin")),
        ),
        ("filter", "depth", "language"),
    ),
    _Task(
        "retry",
        (
            "retry a failing function call up to {n} times {backoff}",
            "re-run a function that fails, at most {n} times, {backoff}",
            "automatically retry a failed call up to {n} times {backoff}",
        ),
        (
            ("n", _words("n", **{"3": "3", "5": "5"})),
            ("backoff", _words("backoff", fixed="with a fixed delay between attempts", exp="with exponential backoff")),
            ("language", _langs("python", "javascript", "java", "go", "rust", "csharp", "typescript", "kotlin")),
        ),
        ("n", "backoff", "language"),
    ),
    _Task(
        "current-time",
        ("get the current {what} {tz}", "find the current {what} {tz}", "read the current {what} {tz}"),
        (
            ("what", _words("what", date="date", datetime="date and time")),
            ("tz", _words("tz", utc="in UTC", local="in the local time zone")),
            ("language", _langs("python", "javascript", "java", "go", "rust", "csharp", "ruby", "php", "swift")),
        ),
        ("what", "tz", "language"),
    ),
    _Task(
        "trim",
        (
            "strip whitespace from {side} of a string",
            "remove the whitespace at {side} of a string",
            "trim the spaces at {side} of a string",
        ),
        (
            ("side", _words("side", start="the start", end="the end", both="both ends")),
            ("language", _langs("python", "javascript", "java", "go", "rust", "csharp", "ruby", "php", "cpp")),
        ),
        ("side", "language"),
    ),
    # Fact questions: whole questions, no language context.
    _Task(
        "complexity",
        (
            "What is the {case} {measure} complexity of {algo}?",
            "What's the {case} {measure} complexity of {algo}?",
            "{case} {measure} complexity of {algo}?",
            "Tell me the {case} {measure} complexity of {algo}.",
            "In big-O terms, what is the {case} {measure} complexity of {algo}?",
            "Quick question: what's the {case} {measure} complexity of {algo}?",
        ),
        (
            ("measure", _words("measure", time="time", space="space")),
            ("case", _words("case", worst="worst-case", avg="average-case", best="best-case")),
            (
                "algo",
                _words(
                    "algo",
                    quicksort="quicksort",
                    mergesort="merge sort",
                    heapsort="heapsort",
                    binsearch="binary search",
                    insertion="insertion sort",
                    bubble="bubble sort",
                    bfs="breadth-first search",
                    dfs="depth-first search",
                    dijkstra="Dijkstra's algorithm",
                ),
            ),
        ),
        ("measure", "case", "algo"),
        fact=True,
    ),
    _Task(
        "data-units",
        (
            "How many {small} are in a {big}?",
            "How many {small} make up one {big}?",
            "A {big} is how many {small}?",
            "Number of {small} in a {big}?",
            "How many {small} does a {big} contain?",
            "How many {small} in a {big}?",
            "What's the number of {small} in one {big}?",
        ),
        (
            ("small", _words("small", bytes="bytes", bits="bits")),
            ("big", _words("big", kb="kilobyte", mb="megabyte", gb="gigabyte", tb="terabyte")),
        ),
        ("small", "big"),
        fact=True,
    ),
    _Task(
        "when-to-use",
        (
            "When should I{neg} use {thing}?",
            "In which situations should I{neg} use {thing}?",
            "When is it a {good} idea to use {thing}?",
            "When does it make sense{neg} to use {thing}?",
            "What are the cases where I should{neg} use {thing}?",
        ),
        (
            # "should I use X" and "should I not use X" ask for the opposite list of reasons.
            ("polarity", {"use": {"neg": "", "good": "good"}, "avoid": {"neg": " not", "good": "bad"}}),
            (
                "thing",
                _words(
                    "thing",
                    orm="an ORM",
                    microservices="microservices",
                    nosql="a NoSQL database",
                    recursion="recursion",
                    graphql="GraphQL",
                    kubernetes="Kubernetes",
                    inheritance="inheritance",
                    queue="a message queue",
                ),
            ),
        ),
        ("polarity", "thing"),
        fact=True,
    ),
    _Task(
        "http-status",
        (
            "What does HTTP status code {code} mean?",
            "What does a {code} response mean?",
            "What is HTTP {code}?",
            "HTTP {code} — what does it mean?",
            "What does it mean when a server returns status {code}?",
            "Meaning of HTTP status {code}?",
        ),
        (("code", _words("code", **{c: c for c in ("200", "201", "204", "301", "302", "400", "401", "403", "404")})),),
        ("code",),
        fact=True,
    ),
    _Task(
        "default-port",
        (
            "What is the default port of {svc}?",
            "What port does {svc} use by default?",
            "Which port does {svc} listen on by default?",
            "Default port for {svc}?",
            "What's {svc}'s default port number?",
        ),
        (
            (
                "service",
                _words("svc", postgres="PostgreSQL", mysql="MySQL", redis="Redis", mongodb="MongoDB", ssh="SSH"),
            ),
        ),
        ("service",),
        fact=True,
    ),
)

_TASK_BY_KEY = {task.key: task for task in _TASKS}

# Trap kinds every workload of enough intents holds, placed before the others (tests and readers
# look for them): order, complexity measure, data unit, conversion direction, language swap.
_REQUIRED_TRAPS = (
    ("sort-list", "order"),
    ("complexity", "measure"),
    ("data-units", "small"),
    ("temperature", "direction"),
    ("str-number", "language"),
)


@dataclass(frozen=True)
class Intent:
    """One cluster: a task with one value per slot, and (once selected) the questions asked for it."""

    task: str
    slots: tuple[tuple[str, str], ...]  # (slot name, value slug), in the task's axis order
    questions: tuple[str, ...] = ()
    sibling: str | None = None  # cluster id of its designated trap sibling, if any

    @property
    def cluster(self) -> str:
        return "-".join([self.task, *(value for _, value in self.slots)])

    def slot(self, name: str) -> str:
        return dict(self.slots)[name]


def differing_slots(a: Intent, b: Intent) -> list[str] | None:
    """The slots in which two intents of one task differ; None for intents of different tasks."""
    if a.task != b.task:
        return None
    return [name for (name, x), (_, y) in zip(a.slots, b.slots, strict=True) if x != y]


def _fields(intent: Intent) -> Fields:
    task = _TASK_BY_KEY[intent.task]
    fields = dict(task.fixed)
    for (_, values), (_, value) in zip(task.axes, intent.slots, strict=True):
        fields.update(values[value])
    return fields


def _fill(template: str, fields: Fields) -> str:
    # Two passes: a field may name another field ("into a new {list}"); an empty field
    # ("no auth") leaves a double space or " ," behind, which is tidied.
    text = template.format(**fields).format(**fields)
    return " ".join(text.split()).replace(" ,", ",")


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def _shapes(task: _Task) -> list[tuple[int, int]]:
    """Every (wording, question template) combination a task can be asked in."""
    if task.fact:
        return [(i, 0) for i in range(len(task.phrases))]
    return [(w, t) for t in range(len(_HOWTO)) for w in range(len(task.phrases))]


def _render(intent: Intent, shape: tuple[int, int]) -> str:
    task = _TASK_BY_KEY[intent.task]
    fields = _fields(intent)
    wording, template = shape
    text = _fill(task.phrases[wording], fields)
    if task.fact:
        return _capitalize(text)
    return _fill(_HOWTO[template], {**fields, "a": text, "A": _capitalize(text)})


def paraphrases(intent: Intent) -> list[str]:
    """Every surface form of an intent (all mean the same thing)."""
    return [_render(intent, shape) for shape in _shapes(_TASK_BY_KEY[intent.task])]


@cache
def _pool() -> tuple[Intent, ...]:
    intents = []
    for task in _TASKS:
        combos: list[tuple[tuple[str, str], ...]] = [()]
        for name, values in task.axes:
            combos = [(*combo, (name, value)) for combo in combos for value in values]
        intents.extend(Intent(task.key, combo) for combo in combos)
    return tuple(intents)


def all_intents() -> list[Intent]:
    """Every intent the templates can build (without questions), in a fixed order."""
    return list(_pool())


@cache
def _pool_by_cluster() -> dict[str, Intent]:
    return {intent.cluster: intent for intent in _pool()}


def _far(candidate: Intent, chosen: list[Intent]) -> bool:
    # At least two slots from every chosen intent of its task: only designated pairs are traps.
    return all(len(differing_slots(candidate, other) or ()) >= 2 for other in chosen)


def _select(n_intents: int, rng: random.Random) -> tuple[list[Intent], list[tuple[Intent, Intent]]]:
    pool = _pool()
    if n_intents > len(pool):
        raise ValueError(f"n_intents={n_intents}: the templates build only {len(pool)} intents")
    by_task: dict[str, list[Intent]] = defaultdict(list)
    for intent in pool:
        by_task[intent.task].append(intent)
    for intents in by_task.values():
        rng.shuffle(intents)
    chosen: dict[str, list[Intent]] = defaultdict(list)
    used: set[str] = set()
    pairs: list[tuple[Intent, Intent]] = []

    def place_pair(task_key: str, axis: str) -> bool:
        values = dict(_TASK_BY_KEY[task_key].axes)[axis]
        for base in by_task[task_key]:
            if base.cluster in used or not _far(base, chosen[task_key]):
                continue
            others = [v for v in values if v != base.slot(axis)]
            rng.shuffle(others)
            for value in others:
                sibling = Intent(task_key, tuple((n, value if n == axis else v) for n, v in base.slots))
                if sibling.cluster not in used and _far(sibling, chosen[task_key]):
                    for intent in (base, sibling):
                        chosen[task_key].append(intent)
                        used.add(intent.cluster)
                    pairs.append((base, sibling))
                    return True
        return False

    n_pairs = round(n_intents * TRAP_SHARE / 2)
    others = [(task.key, axis) for task in _TASKS for axis in task.traps if (task.key, axis) not in _REQUIRED_TRAPS]
    rng.shuffle(others)
    kinds = list(_REQUIRED_TRAPS) + others
    misses = 0
    i = 0
    while len(pairs) < n_pairs and misses < len(kinds):  # stop once a whole round of kinds finds no room
        if place_pair(*kinds[i % len(kinds)]):
            misses = 0
        else:
            misses += 1
        i += 1

    # Singles, round-robin over tasks so every task is represented; when no task has room for an
    # intent two slots from the rest (only for very large n_intents), allow one-slot neighbours.
    order = list(by_task)
    rng.shuffle(order)
    singles: list[Intent] = []
    strict = True
    while len(used) < n_intents:
        added = False
        for task_key in order:
            if len(used) >= n_intents:
                break
            for intent in by_task[task_key]:
                if intent.cluster not in used and (not strict or _far(intent, chosen[task_key])):
                    chosen[task_key].append(intent)
                    used.add(intent.cluster)
                    singles.append(intent)
                    added = True
                    break
        if not added:
            strict = False
    return singles, pairs


def coding_intents(n_intents: int = 200, seed: int = 0) -> list[Intent]:
    """The intents of the workload for (n_intents, seed), each with the questions asked for it.

    Trap pairs come first (base then sibling), then the other intents; `Intent.sibling` links a pair.
    """
    if n_intents < 0:
        raise ValueError("n_intents must be >= 0")
    rng = random.Random(seed)
    singles, pairs = _select(n_intents, rng)
    out: list[Intent] = []

    def asked(intent: Intent, shapes: list[tuple[int, int]], sibling: str | None) -> Intent:
        count = rng.randint(MIN_ASKS, MAX_ASKS)
        return Intent(intent.task, intent.slots, tuple(_render(intent, s) for s in shapes[:count]), sibling)

    def pick_shapes(task: _Task) -> list[tuple[int, int]]:
        # Distinct question templates, each with a random wording of the task: varied surface forms.
        if task.fact:
            return [(i, 0) for i in rng.sample(range(len(task.phrases)), MAX_ASKS)]
        return [(rng.randrange(len(task.phrases)), t) for t in rng.sample(range(len(_HOWTO)), MAX_ASKS)]

    for base, sibling in pairs:
        # One list of shapes for both: the sibling is asked with the same templates and wording,
        # so the two strings differ only in the words of the flipped slot.
        shapes = pick_shapes(_TASK_BY_KEY[base.task])
        out.append(asked(base, shapes, sibling.cluster))
        out.append(asked(sibling, shapes, base.cluster))
    for intent in singles:
        out.append(asked(intent, pick_shapes(_TASK_BY_KEY[intent.task]), None))

    owner: dict[str, str] = {}
    for intent in out:  # a template bug must not turn into a silently wrong benchmark
        for question in intent.questions:
            if owner.setdefault(question, intent.cluster) != intent.cluster or intent.questions.count(question) > 1:
                raise RuntimeError(f"question {question!r} generated twice ({owner[question]}, {intent.cluster})")
    return out


def coding_workload(n_intents: int = 200, seed: int = 0) -> list[dict]:
    """The coding-agent workload: {"question", "cluster"} requests in ask order (seeded shuffle)."""
    requests = [
        {"question": question, "cluster": intent.cluster}
        for intent in coding_intents(n_intents, seed)
        for question in intent.questions
    ]
    random.Random(seed).shuffle(requests)
    return requests


def intent_of(cluster: str) -> Intent:
    """The intent (slots, no questions) a cluster id of this workload names."""
    return _pool_by_cluster()[cluster]


def trap_pairs(workload: Iterable[dict]) -> list[tuple[str, str, str]]:
    """Every pair of clusters in a workload that differ in exactly one slot: (cluster, cluster, slot).

    These are the near-identical negatives: a cache that serves one's answer to the other is wrong.
    """
    by_task: dict[str, list[Intent]] = defaultdict(list)
    for cluster in sorted({request["cluster"] for request in workload}):
        intent = intent_of(cluster)
        by_task[intent.task].append(intent)
    out = []
    for intents in by_task.values():
        for i, a in enumerate(intents):
            for b in intents[i + 1 :]:
                slots = differing_slots(a, b)
                if slots is not None and len(slots) == 1:
                    out.append((a.cluster, b.cluster, slots[0]))
    return out
