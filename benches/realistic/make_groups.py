#!/usr/bin/env python3
"""Realistic, mostly distinct group definitions over `cohort gen` customers.

Two shapes:

  --shape distinct  (default) every group draws fresh random values from the value
                    domains of `cohort gen`'s columns (src/cli/synthetic.rs), for every operator
                    of SPEC §2.2 that applies to them: string equals / not_equals / in /
                    not_in / contains / not_contains / starts_with / ends_with, with and
                    without ignore_case; string ranges; list contains / not_contains;
                    numeric gt / gte / lt / lte / between / equals / in; exists /
                    not_exists; is_true / is_false; date and timestamp windows
                    (within_last / not_within_last, h / d / w units), before / after / on
                    with dates and RFC 3339 timestamps; SQL escape-hatch conditions; static
                    include / exclude lists (ids of the right type, some absent from the
                    table); in_group / not_in_group references to earlier groups.
                    Seed 1: 100 groups → 483 written, 437 distinct conditions; 1000 → 4594, 3298.
  --shape shared    the groups of benches/make_groups.py (conditions repeat: 100 groups
                    have 65 distinct conditions), with static ids of the right type.

Deterministic: group i depends only on (--seed, i, --shape, --id-type, --customers), so
the first 100 of 1000 groups are the 100 groups.

usage:
  make_groups.py OUT_DIR [--groups 100] [--shape distinct|shared] [--id-type int|string]
                 [--customers 10000000] [--seed 1]
Prints the number of written and distinct conditions (stderr) and writes
OUT_DIR/g0000.json ... (an existing OUT_DIR's *.json files are replaced).

The module also exposes KINDS (condition kind -> generator), used by microbench.py.
"""
import argparse
import glob
import importlib.util
import json
import os
import random
import sys

# ---- value domains, mirrored from src/cli/synthetic.rs ---------------------------------
GEO = {
    "United States": {
        "Alaska": ["Anchorage", "Fairbanks", "Juneau"],
        "Florida": ["Miami", "Orlando", "Tampa", "Jacksonville"],
        "Alabama": ["Birmingham", "Montgomery", "Mobile"],
        "California": ["Los Angeles", "San Francisco", "San Diego", "Sacramento"],
        "Texas": ["Houston", "Austin", "Dallas", "San Antonio"],
        "New York": ["New York", "Buffalo", "Albany"],
        "Washington": ["Seattle", "Spokane", "Tacoma"],
    },
    "Canada": {
        "British Columbia": ["Vancouver", "Victoria", "Kelowna"],
        "Nova Scotia": ["Halifax", "Sydney"],
        "Ontario": ["Toronto", "Ottawa", "Hamilton"],
        "Quebec": ["Montréal", "Québec"],
        "Alberta": ["Calgary", "Edmonton"],
    },
    "Mexico": {
        "Jalisco": ["Guadalajara"],
        "Nuevo León": ["Monterrey"],
        "Ciudad de México": ["Ciudad de México"],
    },
    "United Kingdom": {
        "England": ["London", "Manchester", "Leeds"],
        "Scotland": ["Edinburgh", "Glasgow"],
        "Wales": ["Cardiff"],
    },
    "Germany": {
        "Bavaria": ["München", "Nürnberg"],
        "Berlin": ["Berlin"],
        "Hesse": ["Frankfurt"],
    },
}
COUNTRIES = list(GEO)
STATES = [s for c in GEO.values() for s in c]
CITIES = sorted({city for c in GEO.values() for cities in c.values() for city in cities})
FIRST = ["james", "mary", "li", "sofia", "omar", "anna", "lukas", "amelia", "noah", "chloe",
         "mateo", "zoe", "ravi", "emma", "yuki", "lea"]
LAST = ["smith", "garcia", "chen", "muller", "martin", "brown", "tremblay", "nguyen",
        "kowalski", "silva", "jones", "patel"]
DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "example.com", "proton.me", "icloud.com"]
TIERS = ["bronze", "silver", "gold", "platinum"]
TAGS = ["newsletter", "vip", "sale-hunter", "eco", "outdoor", "tech", "fashion", "family",
        "pets", "sports"]
GENDERS = ["female", "male", "non-binary"]
STRING_DOMAINS = {"country": COUNTRIES, "state": STATES, "city": CITIES, "gender": GENDERS,
                  "loyalty_tier": TIERS}
BOOLEANS = ["registered", "brand_conscious", "store_shopper"]
ALL_COLUMNS = ["email", "gender", "age", "birth_date", "country", "state", "city",
               "registered", "loyalty_tier", "brand_conscious", "store_shopper",
               "signup_date", "last_visit_at", "order_count", "total_spend", "tags"]
# gen's anchor is 2026-11-01: signups over the 10 years before it, visits over 2 years,
# birth dates 13..90 years before it.
DATE_RANGES = {"signup_date": (2016, 2026), "last_visit_at": (2024, 2026),
               "birth_date": (1936, 2013)}
# A few values that occur nowhere in the data (typos, retired values): real catalogues
# have them, and they must give empty results on both sides.
ABSENT = {"country": "France", "state": "Ontaria", "city": "Springfield", "gender": "unknown",
          "loyalty_tier": "diamond"}


def scramble_case(rng, s):
    """The same string in a random mix of cases (for ignore_case conditions)."""
    style = rng.randrange(3)
    if style == 0:
        return s.upper()
    if style == 1:
        return s.title()
    return "".join(ch.upper() if rng.random() < 0.5 else ch for ch in s)


# microbench.py forces ignore_case on (True) or off (False) for every string condition.
IGNORE_CASE_OVERRIDE = None


def maybe_ignore_case(rng, cond, p=0.35):
    hit = rng.random() < p
    if IGNORE_CASE_OVERRIDE is not None:
        hit = IGNORE_CASE_OVERRIDE
    if hit:
        cond["ignore_case"] = True
        if "value" in cond:
            cond["value"] = scramble_case(rng, cond["value"])
        else:
            cond["values"] = [scramble_case(rng, v) for v in cond["values"]]
    return cond


def string_value(rng, attr):
    if rng.random() < 0.04:
        return ABSENT[attr]
    return rng.choice(STRING_DOMAINS[attr])


def email_fragment(rng):
    k = rng.randrange(6)
    if k == 0:
        return rng.choice(FIRST)
    if k == 1:
        return rng.choice(LAST)
    if k == 2:
        return f"{rng.choice(FIRST)}.{rng.choice(LAST)}"
    if k == 3:
        return str(rng.randrange(1000))
    if k == 4:
        return f"{rng.choice(LAST)}{rng.randrange(100)}"
    return "@" + rng.choice(DOMAINS).split(".")[0]


def substring(rng, s, lo=2, hi=5):
    n = min(len(s), rng.randint(lo, hi))
    i = rng.randrange(len(s) - n + 1)
    return s[i:i + n]


# ---- condition kinds -------------------------------------------------------------------
def k_str_equals(rng):
    attr = rng.choice(list(STRING_DOMAINS))
    op = rng.choice(["equals", "equals", "equals", "equals", "not_equals"])
    return maybe_ignore_case(rng, {"attribute": attr, "op": op, "value": string_value(rng, attr)})


def k_str_in(rng):
    attr = rng.choice(["state", "city", "city", "country", "loyalty_tier", "gender"])
    dom = STRING_DOMAINS[attr]
    vals = sorted(rng.sample(dom, rng.randint(2, min(8, len(dom)))))
    if rng.random() < 0.1:
        vals.append(ABSENT[attr])
    op = rng.choice(["in", "in", "in", "in", "not_in"])
    return maybe_ignore_case(rng, {"attribute": attr, "op": op, "values": vals})


def k_str_contains(rng):
    op = rng.choice(["contains", "contains", "not_contains"])
    if rng.random() < 0.7:
        vals = sorted({email_fragment(rng) for _ in range(rng.randint(1, 3))})
        cond = {"attribute": "email", "op": op, "values": vals}
    else:
        attr = rng.choice(["city", "state"])
        vals = sorted({substring(rng, rng.choice(STRING_DOMAINS[attr])) for _ in range(rng.randint(1, 2))})
        cond = {"attribute": attr, "op": op, "values": vals}
    if len(cond["values"]) == 1 and rng.random() < 0.5:
        cond["value"] = cond.pop("values")[0]
    return maybe_ignore_case(rng, cond, 0.4)


def k_str_starts_with(rng):
    if rng.random() < 0.6:
        first = rng.choice(FIRST)
        value = first[:rng.randint(1, len(first))] + ("." if rng.random() < 0.2 else "")
        cond = {"attribute": "email", "op": "starts_with", "value": value}
    else:
        attr = rng.choice(["city", "state", "country"])
        s = rng.choice(STRING_DOMAINS[attr])
        cond = {"attribute": attr, "op": "starts_with", "value": s[:rng.randint(1, min(5, len(s)))]}
    return maybe_ignore_case(rng, cond)


def k_str_ends_with(rng):
    k = rng.randrange(4)
    if k == 0:
        value = "@" + rng.choice(DOMAINS)
    elif k == 1:
        value = f"{rng.randrange(10)}@{rng.choice(DOMAINS)}"
    elif k == 2:
        value = rng.choice([".com", ".me", "l.com", "o.com", "d.com"])
        value = value if rng.random() < 0.7 else rng.choice(DOMAINS)[-rng.randint(3, 8):]
    else:
        city = rng.choice(CITIES)
        cond = {"attribute": "city", "op": "ends_with", "value": city[-rng.randint(1, 4):]}
        return maybe_ignore_case(rng, cond)
    return maybe_ignore_case(rng, {"attribute": "email", "op": "ends_with", "value": value})


def k_str_range(rng):
    attr = rng.choice(["city", "email", "state"])
    if attr == "email":
        pivot = rng.choice(FIRST)[:rng.randint(1, 3)]
    else:
        pivot = rng.choice(STRING_DOMAINS[attr])[:rng.randint(1, 4)]
    if rng.random() < 0.3:
        other = rng.choice(FIRST if attr == "email" else STRING_DOMAINS[attr])[:3]
        return {"attribute": attr, "op": "between", "values": sorted([pivot, other])}
    return {"attribute": attr, "op": rng.choice(["gt", "gte", "lt", "lte"]), "value": pivot}


def k_list_contains(rng):
    op = rng.choice(["contains", "contains", "not_contains"])
    vals = sorted(rng.sample(TAGS, rng.randint(1, 3)))
    if len(vals) == 1 and rng.random() < 0.5:
        return {"attribute": "tags", "op": op, "value": vals[0]}
    return {"attribute": "tags", "op": op, "values": vals}


def spend(rng, hi=4800.0):
    return round(rng.uniform(0, hi), 2)


def k_num_compare(rng):
    attr = rng.choice(["age", "age", "order_count", "total_spend", "total_spend"])
    op = rng.choice(["gt", "gte", "lt", "lte"])
    v = {"age": lambda: rng.randint(14, 85), "order_count": lambda: rng.randint(1, 38),
         "total_spend": lambda: spend(rng, 2500)}[attr]()
    return {"attribute": attr, "op": op, "value": v}


def k_num_between(rng):
    attr = rng.choice(["age", "order_count", "total_spend"])
    if attr == "age":
        lo = rng.randint(13, 80)
        vals = [lo, lo + rng.randint(0, 25)]
    elif attr == "order_count":
        lo = rng.randint(0, 35)
        vals = [lo, lo + rng.randint(0, 10)]
    else:
        lo = spend(rng, 2000)
        vals = [lo, round(lo + rng.uniform(1, 1500), 2)]
    return {"attribute": attr, "op": "between", "values": vals}


def k_num_equals(rng):
    attr = rng.choice(["age", "order_count"])
    op = rng.choice(["equals", "not_equals", "in", "not_in"])
    hi = 89 if attr == "age" else 39
    if op in ("in", "not_in"):
        return {"attribute": attr, "op": op, "values": sorted(rng.sample(range(hi + 1), rng.randint(2, 12)))}
    return {"attribute": attr, "op": op, "value": rng.randint(0, hi)}


def k_null_check(rng):
    return {"attribute": rng.choice(ALL_COLUMNS), "op": rng.choice(["exists", "not_exists"])}


def k_boolean(rng):
    return {"attribute": rng.choice(BOOLEANS), "op": rng.choice(["is_true", "is_false"])}


def window(rng, attr):
    if attr == "last_visit_at":
        unit = rng.choice(["h", "d", "d", "w"])
    else:
        unit = rng.choice(["d", "d", "w"])
    top = {"h": 24 * 60, "d": 800, "w": 120}[unit]
    if attr == "signup_date":
        top *= 4
    return f"{rng.randint(1, top)}{unit}"


def k_window(rng):
    attr = rng.choice(["last_visit_at", "last_visit_at", "signup_date"])
    op = rng.choice(["within_last", "within_last", "not_within_last"])
    return {"attribute": attr, "op": op, "value": window(rng, attr)}


def date_value(rng, attr, timestamp=None):
    lo, hi = DATE_RANGES[attr]
    y, m, d = rng.randint(lo, hi), rng.randint(1, 12), rng.randint(1, 28)
    if y == 2026 and m > 10:
        m = rng.randint(1, 10)
    if timestamp is None:
        timestamp = rng.random() < 0.3
    if timestamp:
        return f"{y:04d}-{m:02d}-{d:02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z"
    return f"{y:04d}-{m:02d}-{d:02d}"


def k_date_compare(rng):
    attr = rng.choice(["signup_date", "last_visit_at", "birth_date"])
    op = rng.choice(["before", "after", "before", "after", "gte", "lte", "between"])
    if op == "between":
        a, b = date_value(rng, attr), date_value(rng, attr)
        return {"attribute": attr, "op": op, "values": sorted([a, b], key=lambda s: s[:10])}
    return {"attribute": attr, "op": op, "value": date_value(rng, attr)}


def k_date_on(rng):
    attr = rng.choice(["signup_date", "last_visit_at", "birth_date"])
    return {"attribute": attr, "op": "on", "value": date_value(rng, attr, timestamp=rng.random() < 0.2)}


def k_sql(rng):
    t = rng.randrange(12)
    if t == 0:
        s = f"age + order_count > {rng.randint(20, 110)}"
    elif t == 1:
        s = f"order_count * {rng.randint(2, 9)} < age + {rng.randint(0, 40)}"
    elif t == 2:
        s = f"length(email) {rng.choice(['>', '<', '='])} {rng.randint(18, 32)}"
    elif t == 3:
        s = f"lower(city) LIKE '%{substring(rng, rng.choice(CITIES).lower(), 2, 3)}%'"
    elif t == 4:
        s = f"total_spend > {round(rng.uniform(5, 120), 2)} * order_count"
    elif t == 5:
        y = rng.randint(1940, 2005)
        s = f"extract(year FROM birth_date) BETWEEN {y} AND {y + rng.randint(0, 15)}"
    elif t == 6:
        s = f"date_part('month', signup_date) = {rng.randint(1, 12)}"
    elif t == 7:
        s = f"last_visit_at >= now() - INTERVAL '{rng.randint(1, 700)} days'"
    elif t == 8:
        s = f"age % {rng.randint(2, 9)} = {rng.randint(0, 1)}"
    elif t == 9:
        c = rng.choice(COUNTRIES)
        s = f"country = '{c}' AND (age >= {rng.randint(16, 70)} OR loyalty_tier = '{rng.choice(TIERS)}')"
    elif t == 10:
        s = f"strpos(email, '{rng.choice(LAST)}') > 0 AND registered"
    else:
        s = f"substr(email, 1, 1) IN ('{rng.choice(FIRST)[0]}', '{rng.choice(FIRST)[0]}')"
    return {"sql": s}


KINDS = {
    "str_equals": k_str_equals,
    "str_in": k_str_in,
    "str_contains": k_str_contains,
    "str_starts_with": k_str_starts_with,
    "str_ends_with": k_str_ends_with,
    "str_range": k_str_range,
    "list_contains": k_list_contains,
    "num_compare": k_num_compare,
    "num_between": k_num_between,
    "num_equals": k_num_equals,
    "null_check": k_null_check,
    "boolean": k_boolean,
    "date_window": k_window,
    "date_compare": k_date_compare,
    "date_on": k_date_on,
    "sql": k_sql,
}
# Relative frequency of each kind in a realistic catalogue.
WEIGHTS = {"str_equals": 10, "str_in": 10, "str_contains": 8, "str_starts_with": 5,
           "str_ends_with": 5, "str_range": 2, "list_contains": 8, "num_compare": 10,
           "num_between": 6, "num_equals": 3, "null_check": 5, "boolean": 4,
           "date_window": 10, "date_compare": 5, "date_on": 2, "sql": 7}


def random_condition(rng):
    kinds = list(WEIGHTS)
    return KINDS[rng.choices(kinds, weights=[WEIGHTS[k] for k in kinds])[0]](rng)


# ---- groups ----------------------------------------------------------------------------
def static_id(rng, id_type, customers):
    # 20% of static ids name customers who are not in the table (reported as warnings).
    n = rng.randint(1, customers) if rng.random() < 0.8 else customers + rng.randint(1, 10_000)
    if id_type == "string":
        return f"C{n:08d}"
    return n if rng.random() < 0.8 else str(n)  # an int column accepts ids written as strings


def group_name(i, width):
    return f"g{i:0{width}d}"


def distinct_group(i, rng, id_type, customers, width):
    def clause():
        conds = [random_condition(rng) for _ in range(rng.choice([1, 2, 2, 3, 3, 3]))]
        unique = list({json.dumps(c, sort_keys=True): c for c in conds}.values())
        return {"match": "all" if rng.random() < 0.85 else "any", "conditions": unique}

    include = [clause() for _ in range(rng.choice([1, 1, 1, 1, 2, 2]))]
    exclude = []
    if rng.random() < 0.5:
        exclude.append(clause())
    if rng.random() < 0.1:
        exclude.append({"match": "any", "conditions": [
            {"attribute": "age", "op": "lt", "value": rng.choice([16, 18, 21])},
            {"attribute": "age", "op": "not_exists"}]})
    if i >= 5 and rng.random() < 0.08:
        ref = {"op": rng.choice(["in_group", "in_group", "not_in_group"]),
               "value": group_name(rng.randrange(i), width)}
        (exclude[0] if exclude and rng.random() < 0.3 else include[0])["conditions"].append(ref)
    d = {"name": f"Realistic group {i}", "include": include}
    if exclude:
        d["exclude"] = exclude
    if rng.random() < 0.15:
        d["static"] = {"include": [static_id(rng, id_type, customers) for _ in range(rng.randint(1, 20))]}
        if rng.random() < 0.5:
            d["static"]["exclude"] = [static_id(rng, id_type, customers) for _ in range(rng.randint(1, 5))]
    return d


def shared_group(i, id_type, customers, width):
    spec = importlib.util.spec_from_file_location(
        "shared_make_groups", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "make_groups.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    d = module.group(i, random.Random(i))
    # Same shape as the original, with group references and static ids renamed/typed.
    for clause in d["include"] + d.get("exclude", []):
        for c in clause["conditions"]:
            if c.get("op") == "in group":
                c["value"] = group_name(int(c["value"][1:]), width)
    st = d.get("static")
    if st and id_type == "string":
        d["static"] = {k: [f"C{n:08d}" for n in v] for k, v in st.items()}
    return d


def condition_keys(groups):
    """Canonical JSON of every written condition (group references included)."""
    keys = []
    for d in groups.values():
        for clause in d.get("include", []) + d.get("exclude", []):
            for c in clause["conditions"]:
                keys.append(json.dumps(c, sort_keys=True))
    return keys


def make(n, shape="distinct", id_type="int", customers=10_000_000, seed=1):
    width = max(3, len(str(n - 1)))
    groups = {}
    for i in range(n):
        if shape == "distinct":
            rng = random.Random(f"{seed}:{i}")
            groups[group_name(i, width)] = distinct_group(i, rng, id_type, customers, width)
        else:
            groups[group_name(i, width)] = shared_group(i, id_type, customers, width)
    return groups


def write(out, groups):
    os.makedirs(out, exist_ok=True)
    for old in glob.glob(os.path.join(out, "*.json")) + glob.glob(os.path.join(out, "*.toml")):
        os.remove(old)
    for gid, d in groups.items():
        with open(os.path.join(out, f"{gid}.json"), "w") as f:
            json.dump(d, f, indent=1, ensure_ascii=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--shape", choices=["distinct", "shared"], default="distinct")
    ap.add_argument("--id-type", choices=["int", "string"], default="int")
    ap.add_argument("--customers", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    groups = make(args.groups, args.shape, args.id_type, args.customers, args.seed)
    write(args.out, groups)
    keys = condition_keys(groups)
    print(f"{len(groups)} groups, {len(keys)} written conditions, {len(set(keys))} distinct "
          f"({args.shape}, {args.id_type} ids) in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
