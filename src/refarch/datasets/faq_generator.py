"""Realistic question families for the FAQ pipeline: one original, paraphrased duplicates.

Each family is a problem (an action on an object in one technology) with its own
technical details (API names, error messages). Duplicates paraphrase the title, use
synonyms, keep only some of the details, add chatter, typos and HTML (code blocks that
mention other families' terms, links). Near-miss families share two of the three core
terms with another family, so a ranker must use the details to tell them apart.
The output has the exact shape of the reference's three files, so the same preparation
runs on generated and real data.
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd

from refarch.datasets.stackoverflow import ANSWER_COLUMNS, POST_COLUMNS, RawFaqData, split_malformed

log = logging.getLogger(__name__)

TECHS: dict[str, list[str]] = {
    "javascript": ["javascript", "js", "vanilla js", "ecmascript"],
    "python": ["python", "python 3", "py3", "cpython"],
    "java": ["java", "java 8", "the jvm", "openjdk"],
    "csharp": ["c#", ".net", "csharp", "dotnet"],
    "sql": ["sql", "mysql", "t-sql", "postgres"],
    "php": ["php", "php 7", "php script", "laravel php"],
    "jquery": ["jquery", "jquery ui", "$ selector", "jquery plugin"],
    "node": ["node.js", "node", "nodejs", "express"],
    "react": ["react", "reactjs", "react hooks", "jsx"],
    "bash": ["bash", "shell script", "sh", "linux shell"],
}

ACTIONS: dict[str, list[str]] = {
    "sort": ["sort", "order", "arrange", "reorder"],
    "remove duplicates from": ["remove duplicates from", "dedupe", "get unique values of", "deduplicate"],
    "convert to string": ["convert to string", "turn into a string", "stringify", "cast to text"],
    "iterate over": ["iterate over", "loop through", "enumerate", "walk over"],
    "compare": ["compare", "check equality of", "diff", "test if equal"],
    "parse": ["parse", "read", "decode", "deserialize"],
    "merge": ["merge", "combine", "join together", "concatenate"],
    "filter": ["filter", "select items from", "keep matching items of", "exclude items from"],
    "format": ["format", "pretty print", "display nicely", "render"],
    "validate": ["validate", "check", "verify", "sanity check"],
    "copy": ["copy", "clone", "duplicate", "deep copy"],
    "find the length of": ["find the length of", "count items in", "get the size of", "measure"],
}

OBJECTS: dict[str, list[str]] = {
    "array": ["array", "list", "array of numbers", "collection"],
    "string": ["string", "text", "character sequence", "str value"],
    "date": ["date", "datetime", "timestamp", "calendar date"],
    "object": ["object", "dictionary", "map", "hash"],
    "json": ["json", "json payload", "json document", "json response"],
    "file": ["file", "text file", "file on disk", "csv file"],
    "email address": ["email address", "e-mail", "email field", "mail address"],
    "url": ["url", "query string", "link", "uri"],
    "number": ["number", "integer", "float value", "decimal"],
    "regex match": ["regex match", "regular expression match", "pattern match", "regex group"],
}

DETAILS: dict[str, list[str]] = {
    "javascript": [
        "Array.prototype.sort",
        "localeCompare",
        "JSON.stringify",
        "Object.keys",
        "forEach",
        "parseInt",
        "toFixed",
        "Date.parse",
        "Set",
        "spread operator",
        "typeof",
        "undefined",
        "NaN",
        "reduce",
        "indexOf",
        "slice",
        "splice",
        "Object.assign",
        "RegExp.exec",
        "toISOString",
    ],
    "python": [
        "sorted",
        "lambda key",
        "set()",
        "str()",
        "enumerate",
        "zip",
        "json.loads",
        "datetime.strptime",
        "dict comprehension",
        "copy.deepcopy",
        "len()",
        "re.findall",
        "TypeError",
        "KeyError",
        "list comprehension",
        "f-string",
        "itertools",
        "collections.Counter",
        "pathlib",
        "isinstance",
    ],
    "java": [
        "Collections.sort",
        "Comparator",
        "HashSet",
        "String.valueOf",
        "Iterator",
        "equals()",
        "hashCode",
        "LocalDate",
        "SimpleDateFormat",
        "stream()",
        "NullPointerException",
        "ArrayList",
        "HashMap",
        "Integer.parseInt",
        "Pattern.compile",
        "clone()",
        "System.arraycopy",
        "toString()",
        "Optional",
        "ClassCastException",
    ],
    "csharp": [
        "LINQ",
        "OrderBy",
        "Distinct()",
        "ToString()",
        "foreach",
        "String.Format",
        "DateTime.Parse",
        "Dictionary<string,int>",
        "JsonConvert",
        "Newtonsoft",
        "IEnumerable",
        "Regex.Match",
        "int.TryParse",
        "List<T>",
        "Equals",
        "StringBuilder",
        "Count()",
        "Where()",
        "CultureInfo",
        "NullReferenceException",
    ],
    "sql": [
        "ORDER BY",
        "DISTINCT",
        "GROUP BY",
        "CAST",
        "CONVERT",
        "JOIN",
        "WHERE clause",
        "DATEDIFF",
        "COUNT(*)",
        "UNION ALL",
        "LIKE",
        "COALESCE",
        "subquery",
        "CTE",
        "ROW_NUMBER()",
        "INNER JOIN",
        "VARCHAR",
        "NULL values",
        "index",
        "HAVING",
    ],
    "php": [
        "usort",
        "array_unique",
        "json_decode",
        "strtotime",
        "explode",
        "implode",
        "preg_match",
        "foreach",
        "array_merge",
        "count()",
        "var_dump",
        "isset",
        "strcmp",
        "filter_var",
        "date()",
        "sprintf",
        "array_filter",
        "in_array",
        "str_replace",
        "PDO",
    ],
    "jquery": [
        "$.each",
        "$.ajax",
        ".val()",
        ".text()",
        ".find()",
        ".filter()",
        "$.extend",
        ".length",
        "$(document).ready",
        ".on('click')",
        ".attr()",
        ".html()",
        "$.map",
        "$.grep",
        ".clone()",
        ".serialize()",
        "$.parseJSON",
        ".closest()",
        ".data()",
        ".append()",
    ],
    "node": [
        "fs.readFile",
        "require",
        "Buffer",
        "npm",
        "async/await",
        "Promise.all",
        "path.join",
        "callback",
        "stream",
        "JSON.parse",
        "process.argv",
        "module.exports",
        "EventEmitter",
        "readline",
        "util.format",
        "express.json",
        "res.send",
        "lodash",
        "moment",
        "child_process",
    ],
    "react": [
        "useState",
        "useEffect",
        "props",
        "setState",
        "map()",
        "key prop",
        "re-render",
        "component",
        "useMemo",
        "onChange",
        "controlled input",
        "context",
        "reducer",
        "immutable update",
        "spread syntax",
        "JSX expression",
        "fragment",
        "ref",
        "PropTypes",
        "virtual dom",
    ],
    "bash": [
        "sort -n",
        "uniq",
        "awk",
        "sed",
        "grep -E",
        "cut -d",
        "xargs",
        "for loop",
        "wc -l",
        "date +%s",
        "$(...)",
        "read -r",
        "IFS",
        "tr",
        "printf",
        "test -f",
        "jq",
        "diff",
        "cp -r",
        "find -name",
    ],
}

ALL_DETAILS = [d for names in DETAILS.values() for d in names]

TITLES = [
    "how do i {action} a {object} in {tech}?",
    "how to {action} {object} with {tech}",
    "{tech}: {action} {object}",
    "what is the best way to {action} a {object} in {tech}",
    "{action} {object} in {tech} not working",
    "is there a simple way to {action} a {object} using {tech}?",
    "trying to {action} a {object} ({tech})",
    "{tech} - how can i {action} my {object}",
]

DETAIL_SENTENCES = [
    "i tried {d} but it does not do what i expect.",
    "i read that {d} should work here.",
    "using {d} gives me the wrong result.",
    "should i use {d} for this?",
    "my code calls {d} and then fails.",
    "someone suggested {d}, is that right?",
    "the problem seems to be related to {d}.",
    "i get an error when i use {d}.",
]

CHATTER = [
    "i am new to programming so sorry if this is obvious.",
    "thanks in advance for any help.",
    "i have searched everywhere but could not find an answer.",
    "any help would be appreciated.",
    "this is driving me crazy.",
    "i am working on a small project for school.",
    "here is what i have so far.",
    "it works in chrome but not in firefox.",
    "edit: added more details below.",
    "i feel like i am missing something simple.",
    "the documentation was not very clear to me.",
    "we upgraded recently and now this broke.",
]

LINKS = [
    '<a href="https://developer.mozilla.org/en-US/docs/Web">the docs</a>',
    '<a href="https://stackoverflow.com/questions/111">this question</a>',
    '<a href="https://example.com/tutorial">https://example.com/tutorial</a>',
]


def _typo(word: str, rng: np.random.Generator) -> str:
    if len(word) < 4:
        return word
    i = int(rng.integers(1, len(word) - 2))
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def _noisy(text: str, rng: np.random.Generator, typo_rate: float) -> str:
    return " ".join(_typo(w, rng) if rng.random() < typo_rate else w for w in text.split(" "))


def _pick_families(n: int, rng: np.random.Generator, near_miss_share: float) -> list[tuple[str, str, str]]:
    """Distinct (tech, action, object) triples; a share of them varies one term of an earlier family."""
    techs, actions, objects = list(TECHS), list(ACTIONS), list(OBJECTS)
    capacity = len(techs) * len(actions) * len(objects)
    if n > capacity:
        raise ValueError(f"n_families={n} is above the {capacity} distinct families the vocabulary allows")
    chosen: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str, str]] = set()
    for _ in range(100 * n):  # bounded: a few retries per family at most
        if len(chosen) == n:
            break
        if chosen and rng.random() < near_miss_share:
            base = list(chosen[int(rng.integers(len(chosen)))])
            slot = int(rng.integers(3))
            base[slot] = str(rng.choice((techs, actions, objects)[slot]))
            family = (base[0], base[1], base[2])
        else:
            family = (str(rng.choice(techs)), str(rng.choice(actions)), str(rng.choice(objects)))
        if family not in seen:
            seen.add(family)
            chosen.append(family)
    if len(chosen) < n:
        raise RuntimeError(f"could only draw {len(chosen)} distinct families out of {n}")
    return chosen


def _post(
    family: tuple[str, str, str],
    details: list[str],
    rng: np.random.Generator,
    original: bool,
    typo_rate: float,
    detail_keep: float,
) -> str:
    tech, action, obj = family
    pick = (lambda names: names[0]) if original else (lambda names: str(rng.choice(names)))
    title = str(rng.choice(TITLES)).format(
        action=pick(ACTIONS[action]), object=pick(OBJECTS[obj]), tech=pick(TECHS[tech])
    )
    kept = details if original else [d for d in details if rng.random() < detail_keep] or [str(rng.choice(details))]
    sentences = [str(rng.choice(DETAIL_SENTENCES)).format(d=f"<code>{d}</code>") for d in kept]
    sentences += [str(s) for s in rng.choice(CHATTER, size=int(rng.integers(1, 4)), replace=False)]
    rng.shuffle(sentences)
    body = " ".join(sentences)
    if not original:
        title, body = _noisy(title, rng, typo_rate), _noisy(body, rng, typo_rate)
    html = f"<p><strong>{title}</strong></p><p>{body}</p>"
    if rng.random() < 0.5:  # code blocks quote other APIs: cleaning must drop them
        other = rng.choice(ALL_DETAILS, size=3, replace=False)
        html += "<pre><code>// " + " ; ".join(map(str, other)) + "\nvar x = [3, 1, 2];</code></pre>"
    if rng.random() < 0.3:
        html += f"<p>see {rng.choice(LINKS)} for what i tried.</p>"
    return html


def generate_faq_data(
    *,
    n_families: int,
    min_duplicates: int,
    max_duplicates: int,
    near_miss_share: float,
    typo_rate: float,
    detail_keep: float,
    small_family_share: float,
    malformed_rows: int,
    seed: int,
) -> RawFaqData:
    """Question families in the shape of the reference's files (HTML text, answer-id links).

    Every knob is given: the pipeline passes conf/faq.yml `generator` (refarch.faq.settings.Generator).
    `near_miss_share` of the families share two of their three core terms with another family;
    duplicates get typos at `typo_rate` per word and keep each technical detail with probability
    `detail_keep`. `small_family_share` of the families get fewer duplicates than
    `min_duplicates`, and some duplicates are short, so the preparation's filters have something
    to remove; `malformed_rows` adds rows with broken ids or empty text for the quarantine.
    """
    if not 1 <= min_duplicates <= max_duplicates:
        raise ValueError("need 1 <= min_duplicates <= max_duplicates")
    rng = np.random.default_rng(seed)
    families = _pick_families(n_families, rng, near_miss_share)
    start = dt.datetime(2012, 1, 1)
    questions, duplicates, answers = [], [], []
    dup_id = 30_000_000
    for i, family in enumerate(families):
        qid, aid = 1_000_000 + 37 * i, 2_000_000 + 41 * i
        details = [str(d) for d in rng.choice(DETAILS[family[0]], size=3, replace=False)]
        created = start + dt.timedelta(days=int(rng.integers(0, 700)))
        questions.append((str(qid), str(aid), _post(family, details, rng, True, typo_rate, 1.0), created.isoformat()))
        answers.append((str(aid), f"<p>use <code>{details[0]}</code> like this.</p>"))
        small = rng.random() < small_family_share
        n_dupes = (
            int(rng.integers(1, min_duplicates)) if small else int(rng.integers(min_duplicates, max_duplicates + 1))
        )
        for _ in range(n_dupes):
            dup_id += int(rng.integers(1, 50))
            text = _post(family, details, rng, False, typo_rate, detail_keep)
            if rng.random() < 0.03:  # a terse duplicate that the minimum length removes
                text = f"<p>{family[1]} {family[2]}?</p>"
            when = created + dt.timedelta(days=int(rng.integers(1, 1500)))
            duplicates.append((str(dup_id), str(aid), text, when.isoformat()))
    for j in range(malformed_rows):
        duplicates.append((f"x{j}", str(2_000_000), "<p>broken id</p>", start.isoformat()))
        questions.append((str(9_000_000 + j), str(9_500_000 + j), "", start.isoformat()))
    good_q, bad_q = split_malformed(pd.DataFrame(questions, columns=list(POST_COLUMNS)), "questions")
    good_d, bad_d = split_malformed(pd.DataFrame(duplicates, columns=list(POST_COLUMNS)), "duplicates")
    raw = RawFaqData(
        questions=good_q,
        duplicates=good_d,
        answers=pd.DataFrame(answers, columns=list(ANSWER_COLUMNS)),
        malformed=pd.concat([bad_q, bad_d], ignore_index=True),
    )
    log.info("generated %d question families: %s", n_families, raw.counts())
    return raw
