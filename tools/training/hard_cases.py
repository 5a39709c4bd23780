"""Rule-based mutations of one question into a hard negative or a hard positive.

A cache meets near-duplicates that differ in one word that changes the answer ("sort ascending"
vs "sort descending", "enable" vs "disable", "Python to Java" vs "Java to Python", "5 GB" vs
"50 GB"), and true duplicates that differ only in wording, word order or typos. Each function
takes a question and a seeded `random.Random` and returns the mutated text, or None when the
rule does not apply. Torch-free: the unit tests run them in the runtime venv.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

# Pairs whose swap flips what the question asks for. Matched as whole words, case-insensitively.
ANTONYMS = [
    ("ascending", "descending"), ("enable", "disable"), ("enabled", "disabled"), ("add", "remove"),
    ("increase", "decrease"), ("install", "uninstall"), ("encrypt", "decrypt"), ("upload", "download"),
    ("import", "export"), ("start", "stop"), ("open", "close"), ("maximum", "minimum"), ("max", "min"),
    ("before", "after"), ("above", "below"), ("first", "last"), ("largest", "smallest"),
    ("biggest", "smallest"), ("compress", "decompress"), ("serialize", "deserialize"), ("push", "pull"),
    ("lock", "unlock"), ("show", "hide"), ("true", "false"), ("left", "right"), ("uppercase", "lowercase"),
    ("encode", "decode"), ("faster", "slower"), ("synchronous", "asynchronous"), ("public", "private"),
    ("horizontal", "vertical"), ("horizontally", "vertically"), ("input", "output"), ("read", "write"),
    ("send", "receive"), ("client", "server"), ("best", "worst"), ("cheapest", "most expensive"),
    ("gain", "lose"), ("buy", "sell"), ("advantages", "disadvantages"), ("pros", "cons"), ("rich", "poor"),
    ("hot", "cold"), ("higher", "lower"), ("more", "less"), ("better", "worse"), ("legal", "illegal"),
    ("possible", "impossible"), ("love", "hate"), ("men", "women"), ("boys", "girls"), ("male", "female"),
    ("north", "south"), ("east", "west"), ("past", "future"), ("old", "new"), ("easy", "hard"),
    ("success", "failure"), ("win", "lose"), ("import", "export"), ("inner", "outer"), ("begin", "end"),
]  # fmt: skip

# Same-category entities: replacing one with another changes the subject of the question.
ENTITIES = {
    "programming language": ["Python", "Java", "JavaScript", "TypeScript", "Go", "Rust", "C++", "C#", "Ruby",
                             "PHP", "Kotlin", "Swift", "Scala", "Perl", "Haskell", "R", "MATLAB"],
    "product": ["iPhone", "Android", "Windows", "macOS", "Linux", "Ubuntu", "Chrome", "Firefox", "Safari",
                "PostgreSQL", "MySQL", "MongoDB", "Redis", "Docker", "Kubernetes", "AWS", "Azure", "Excel",
                "Photoshop", "WhatsApp", "Facebook", "Instagram", "Twitter", "YouTube", "Google", "Amazon",
                "Netflix", "Samsung", "Xbox", "PlayStation"],
    "place": ["India", "China", "USA", "Canada", "Germany", "France", "Japan", "Australia", "UK", "Pakistan",
              "Russia", "Brazil", "Italy", "Spain", "Mexico", "London", "Paris", "Tokyo", "Delhi", "Mumbai",
              "Bangalore", "New York", "Berlin", "Sydney", "Toronto", "Singapore", "Dubai", "California"],
    "natural language": ["English", "Spanish", "French", "German", "Hindi", "Chinese", "Japanese", "Arabic",
                         "Portuguese", "Russian", "Italian", "Korean"],
}  # fmt: skip

# Unit -> interchangeable-looking units of the same dimension.
UNITS = [
    ["km", "miles", "meters", "feet"], ["kg", "pounds", "grams", "ounces"], ["MB", "GB", "KB", "TB"],
    ["Celsius", "Fahrenheit", "Kelvin"], ["seconds", "minutes", "hours", "days"], ["dollars", "euros", "rupees"],
    ["months", "years", "weeks"], ["liters", "gallons"], ["inches", "centimeters"],
]  # fmt: skip

# Auxiliary -> its negation (and back): "Why does X work" vs "Why doesn't X work".
NEGATIONS = [
    ("does not", "does"), ("doesn't", "does"), ("do not", "do"), ("don't", "do"), ("is not", "is"),
    ("isn't", "is"), ("are not", "are"), ("aren't", "are"), ("cannot", "can"), ("can't", "can"),
    ("should not", "should"), ("shouldn't", "should"), ("will not", "will"), ("won't", "will"),
    ("without", "with"), ("was not", "was"), ("wasn't", "was"), ("did not", "did"), ("didn't", "did"),
]  # fmt: skip

# Wordings that ask the same thing (both directions are used).
REWORDINGS = [
    ("how do i", "how can i"), ("how do you", "how does one"), ("what is", "what's"), ("what are", "which are"),
    ("is it possible to", "can i"), ("can you", "could you"), ("what is the best way to", "how should i"),
    ("how to", "how do i"), ("i am", "i'm"), ("do not", "don't"), ("does not", "doesn't"), ("cannot", "can't"),
    ("what is the meaning of", "what does it mean by"), ("should i", "do i need to"),
]  # fmt: skip

_KEEP_ORDER = {"between", "and", "or", "the", "a", "an", "of", "in", "on", "to", "for", "is", "are"}


def _word(word: str) -> re.Pattern:
    """Whole-word, case-insensitive pattern; entity names such as C++ end in non-word characters."""
    return re.compile(rf"(?<![\w+#]){re.escape(word)}(?![\w+#])", re.IGNORECASE)


def _match_case(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _replace_one(text: str, rng: random.Random, table: list[tuple[str, str]]) -> str | None:
    """Replace one occurrence of a word from `table` (either side) by its partner, keeping its case."""
    found = []
    for left, right in table:
        for src, dst in ((left, right), (right, left)):
            for m in _word(src).finditer(text):
                found.append((m, dst))
    if not found:
        return None
    m, dst = rng.choice(found)
    return text[: m.start()] + _match_case(m.group(0), dst) + text[m.end() :]


def swap_antonym(text: str, rng: random.Random) -> str | None:
    """ "sort ascending" -> "sort descending"."""
    return _replace_one(text, rng, ANTONYMS)


_WHY = re.compile(r"\b(why|how come) (do|does|did|is|are|was|can|would|should|will)\b(?!n't| not)", re.IGNORECASE)
_HOW = re.compile(r"\b(how to|how (?:can|do|should) (?:i|you|we))\b(?! not)", re.IGNORECASE)
_CONTRACTED = {"can": "can't", "will": "won't"}


def negate(text: str, rng: random.Random) -> str | None:
    """Add or remove a negation: "Why doesn't it work" <-> "Why does it work", "how to X" -> "how to not X"."""
    removed = _replace_one(text, rng, [(neg, pos) for neg, pos in NEGATIONS])
    if removed is not None and any(_word(neg).search(text) for neg, _ in NEGATIONS):
        return removed  # the text had a negation (or "without"): dropping it flips the question
    m = _WHY.search(text)
    if m:
        aux = m.group(2)
        negated = _CONTRACTED.get(aux.lower(), aux + "n't")
        return text[: m.start(2)] + _match_case(aux, negated) + text[m.end(2) :]
    m = _HOW.search(text)
    if m:
        return text[: m.end()] + " not" + text[m.end() :]
    m = _word("with").search(text)
    if m:
        return text[: m.start()] + _match_case(m.group(0), "without") + text[m.end() :]
    return None


def swap_entity(text: str, rng: random.Random) -> str | None:
    """Replace a language, product or place with another of its category: "in Python" -> "in Go"."""
    found = [(m, names) for names in ENTITIES.values() for name in names for m in _word(name).finditer(text)]
    if not found:
        return None
    m, names = rng.choice(found)
    other = rng.choice([n for n in names if n.lower() != m.group(0).lower()])
    return text[: m.start()] + other + text[m.end() :]


_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]*\d)")


def swap_number(text: str, rng: random.Random) -> str | None:
    """Change one number: "5 GB" -> "50 GB", "Python 3.11" -> "Python 3.12"."""
    found = list(_NUMBER.finditer(text))
    if not found:
        return None
    m = rng.choice(found)
    old = m.group(0)
    if "." in old:
        whole, frac = old.split(".")
        new = f"{whole}.{int(frac) + rng.choice([1, 2, -1]) if int(frac) > 1 else int(frac) + 1}"
    else:
        value = int(old)
        new = str(rng.choice([value + 1, value * 2, value * 10, max(value - 1, 0)]) if value else rng.randint(1, 9))
    if new == old:
        new = str(int(float(old)) + 1)
    return text[: m.start()] + new + text[m.end() :]


def swap_unit(text: str, rng: random.Random) -> str | None:
    """Change one unit to another of the same dimension: "10 km" -> "10 miles"."""
    found = [(m, group) for group in UNITS for unit in group for m in _word(unit).finditer(text)]
    if not found:
        return None
    m, group = rng.choice(found)
    other = rng.choice([u for u in group if u.lower() != m.group(0).lower()])
    return text[: m.start()] + other + text[m.end() :]


_DIRECTION = re.compile(
    r"\b(from|convert|translate|migrate)\s+(?!from\b)(.+?)\s+(to|into)\s+(.+?)(?=[?.,!]|\s+(?:in|on|using|with|by|for)\b|$)",
    re.IGNORECASE,
)
_VERSUS = re.compile(r"\b(\w[\w+#]*)\s+(to|into|over|than|beats?)\s+(\w[\w+#]*)", re.IGNORECASE)


def swap_direction(text: str, rng: random.Random) -> str | None:
    """A -> B becomes B -> A: "convert Celsius to Fahrenheit" -> "convert Fahrenheit to Celsius"."""
    m = _DIRECTION.search(text)
    if m and m.group(2).lower() != m.group(4).lower():
        return text[: m.start(2)] + m.group(4) + text[m.end(2) : m.start(4)] + m.group(2) + text[m.end(4) :]
    entities = {n.lower() for names in ENTITIES.values() for n in names} | {u.lower() for g in UNITS for u in g}
    for m in _VERSUS.finditer(text):
        if m.group(1).lower() in entities and m.group(3).lower() in entities and m.group(1) != m.group(3):
            return text[: m.start(1)] + m.group(3) + text[m.end(1) : m.start(3)] + m.group(1) + text[m.end(3) :]
    return None


def reorder(text: str, rng: random.Random) -> str | None:
    """Swap the two sides of a symmetric "X and Y": "difference between TCP and UDP" -> "... UDP and TCP"."""
    found = [
        m
        for m in re.finditer(r"\b(\w[\w+#]*) (and|or|vs\.?|versus) (\w[\w+#]*)\b", text)
        if m.group(1).lower() not in _KEEP_ORDER and m.group(3).lower() not in _KEEP_ORDER
    ]
    if not found:
        return None
    m = rng.choice(found)
    return text[: m.start()] + f"{m.group(3)} {m.group(2)} {m.group(1)}" + text[m.end() :]


def reword(text: str, rng: random.Random) -> str | None:
    """Same question in other words: "How do I" -> "How can I", "What is" -> "What's"."""
    out = _replace_one(text, rng, REWORDINGS)
    return None if out is None else re.sub(r"\bi\b(?!')|\bi(?='m)", "I", out)


def add_typos(text: str, rng: random.Random, count: int = 0) -> str | None:
    """One or two keyboard slips (swap, drop or double a letter) inside words of 4+ letters."""
    words = [m for m in re.finditer(r"[A-Za-z]{4,}", text)]
    if not words:
        return None
    out = text
    for _ in range(count or rng.choice([1, 1, 2])):
        m = rng.choice([w for w in re.finditer(r"[A-Za-z]{4,}", out)] or words)
        word, i = m.group(0), rng.randrange(1, len(m.group(0)) - 2)
        kind = rng.choice(["swap", "drop", "double"])
        if kind == "swap":
            word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif kind == "drop":
            word = word[:i] + word[i + 1 :]
        else:
            word = word[:i] + word[i] + word[i:]
        out = out[: m.start()] + word + out[m.end() :]
    return out if out != text else None


def restyle(text: str, rng: random.Random) -> str | None:
    """Casing and punctuation only: lower-cased, question mark dropped or added, "please" added."""
    style = rng.choice(["lower", "punct", "please"])
    if style == "lower":
        out = text.lower()
    elif style == "punct":
        out = text.rstrip("?") if text.endswith("?") else text + "?"
    else:
        out = text.rstrip("?") + ", please?"
    return out if out != text else None


# Sentence-level rules, PAWS-style: the same words in another order. Applied to the news and
# Wikipedia sentences of MRPC / STS-B / PAWS dev (not to questions).
_PROPER = re.compile(r"(?<![\w'$])[A-Z][\w'-]*(?: (?:of |de |von |the )?[A-Z][\w'-]*)*")
_WHOLE_NUMBER = re.compile(r"(?<![\w.,$])\d+(?:\.\d+)?(?![\w%$]|[.,]\d)")
_SYMMETRIC_JOIN = re.compile(r"^\s*(?:,\s*)?(?:and|or|&|,)\s*$")


def swap_roles(text: str, rng: random.Random) -> str | None:
    """Two names (or two numbers) trade places: "A moved from X to Y" -> "A moved from Y to X".
    Names joined only by "and" / "or" / "," are left alone: swapping those keeps the meaning."""
    spans = [m for m in _PROPER.finditer(text) if m.start() > 0] or []
    numbers = list(_WHOLE_NUMBER.finditer(text))
    for found in rng.sample([spans, numbers], 2):
        pairs = [
            (a, b)
            for i, a in enumerate(found)
            for b in found[i + 1 :]
            if a.group(0) != b.group(0) and not _SYMMETRIC_JOIN.match(text[a.end() : b.start()])
        ]
        if pairs:
            a, b = rng.choice(pairs)
            return text[: a.start()] + b.group(0) + text[a.end() : b.start()] + a.group(0) + text[b.end() :]
    return None


_LEADING_PHRASE = re.compile(r"^(In|On|At|During|After|Before|Since|By|From) ([^,]{3,40}?)\s*,\s+(.+?)(\s*[.?!])?$")


def move_phrase(text: str, rng: random.Random) -> str | None:
    """A leading phrase moves to the end: "In 1972 , the family moved" -> "The family moved in 1972"."""
    m = _LEADING_PHRASE.match(text)
    if not m or not m.group(3)[:1].isalpha():
        return None
    rest = m.group(3)
    first = rest.split(" ", 1)[0]
    if first not in ("I",) and not (first.isupper() and len(first) > 1) and not _PROPER.match(first):
        rest = rest[:1].upper() + rest[1:]
    elif first[:1].islower():
        rest = rest[:1].upper() + rest[1:]
    return f"{rest[:1].upper()}{rest[1:]} {m.group(1).lower()} {m.group(2)}{m.group(4) or ''}"


_CONJUNCTION = re.compile(r"\b(\w[\w+#]*) (or|and) (an? |the )?(\w[\w+#]*)\b")


def swap_conjunction(text: str, rng: random.Random) -> str | None:
    """ "A or B" <-> "A and B": one of two things is not both ("Python or Go" vs "Python and Go")."""
    found = [
        m
        for m in _CONJUNCTION.finditer(text)
        if m.group(1).lower() not in _KEEP_ORDER and m.group(4).lower() not in _KEEP_ORDER
    ]
    if not found:
        return None
    m = rng.choice(found)
    other = "and" if m.group(2) == "or" else "or"
    return text[: m.start(2)] + other + text[m.end(2) :]


# Gendered words and their counterparts: with two people in a question, "his" and "her" pick one.
PRONOUNS = [("his", "her"), ("he", "she"), ("him", "her"), ("himself", "herself"), ("boyfriend", "girlfriend"),
            ("husband", "wife"), ("father", "mother"), ("son", "daughter"), ("brother", "sister")]  # fmt: skip


def swap_pronoun(text: str, rng: random.Random) -> str | None:
    """ "Would his family be happy?" -> "Would her family be happy?": another person's."""
    return _replace_one(text, rng, PRONOUNS)


# Tense and aspect: "What is X" and "What was X", "Is she a doctor" and "Is she becoming a doctor"
# ask different things (now vs then, a state vs a change).
TENSES = [("is", "was"), ("are", "were"), ("does", "did"), ("do", "did"), ("has", "had"), ("will", "did")]
_BECOMING = re.compile(r"^(?:Is|Are|Am) (?:[A-Z]\w+(?: [A-Z]\w+)?|he|she|it|they|I|you|we)(?= (?:an?|the|more|less) )")


def change_tense(text: str, rng: random.Random) -> str | None:
    """ "Is Ann a doctor?" -> "Was Ann a doctor?" or "Is Ann becoming a doctor?"."""
    m = _BECOMING.match(text)
    if m and rng.random() < 0.5:
        return text[: m.end()] + " becoming" + text[m.end() :]
    return _replace_one(text, rng, [(now, then) for now, then in TENSES])


_NAME = re.compile(r"(?<=\s)(?!I\b)[A-Z][a-z]+(?: [A-Z][a-z]+)*")


def swap_people(text: str, rng: random.Random) -> str | None:
    """Two names trade places around a relation: "Is Ann punching Bob?" -> "Is Bob punching Ann?".
    Names joined only by "and" / "or" / "," are left alone (a symmetric list)."""
    names = list(_NAME.finditer(text))
    pairs = [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if a.group(0) != b.group(0) and not _SYMMETRIC_JOIN.match(text[a.end() : b.start()])
    ]
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    return text[: a.start()] + b.group(0) + text[a.end() : b.start()] + a.group(0) + text[b.end() :]


# Preambles that add nothing to what is asked: a cache should still match the bare question.
PREAMBLES = ["Quick question: ", "Hi everyone! ", "I'm a beginner. ", "Sorry if this is obvious, but ",
             "Thanks in advance. ", "Something I've always wondered: ", "Hello, ", "Asking for a friend: ",
             "I searched but found nothing. ", "Newbie here. "]  # fmt: skip


def add_preamble(text: str, rng: random.Random) -> str | None:
    """ "How do I X?" -> "Quick question: how do I X?" (the words around the question change nothing)."""
    if not text[:1].isalpha():
        return None
    first = text.split(" ", 1)[0]
    # "I", "I'm", acronyms and names in CamelCase keep their capital
    keep_case = first == "I" or first.startswith("I'") or first[1:] != first[1:].lower()
    return rng.choice(PREAMBLES) + (text if keep_case else text[:1].lower() + text[1:])


Mutation = Callable[[str, random.Random], "str | None"]

NEGATIVES: dict[str, Mutation] = {
    "antonym": swap_antonym,
    "negation": negate,
    "entity": swap_entity,
    "number": swap_number,
    "unit": swap_unit,
    "direction": swap_direction,
}
POSITIVES: dict[str, Mutation] = {"reorder": reorder, "reword": reword, "typo": add_typos, "restyle": restyle}
SENTENCE_NEGATIVES: dict[str, Mutation] = {"roles": swap_roles}
SENTENCE_POSITIVES: dict[str, Mutation] = {"phrase": move_phrase}
# One slot that changes who, when, or how many things are meant; stage 3 only (Recipe.relation_traps).
RELATION_NEGATIVES: dict[str, Mutation] = {
    "conjunction": swap_conjunction,
    "pronoun": swap_pronoun,
    "tense": change_tense,
    "people": swap_people,
}
RELATION_POSITIVES: dict[str, Mutation] = {"preamble": add_preamble}
