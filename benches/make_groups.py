#!/usr/bin/env python3
"""Write N realistic group definitions (default 100) for benchmarks over `cohort gen` data.

A mix of equality, in-lists, string contains / starts_with with and without ignore_case,
numeric ranges, null checks, date windows, list contains, static lists and group
references. Deterministic: group i is always the same. Many conditions repeat across
groups, as they do in real campaign catalogues (same country filters, same age bands).

usage: make_groups.py OUT_DIR [N]
"""
import json
import os
import random
import sys

COUNTRIES = {
    "United States": ["Alaska", "Florida", "Alabama", "California", "Texas", "New York", "Washington"],
    "Canada": ["British Columbia", "Nova Scotia", "Ontario", "Quebec", "Alberta"],
    "United Kingdom": ["England", "Scotland", "Wales"],
    "Germany": ["Bavaria", "Berlin", "Hesse"],
    "Mexico": ["Jalisco", "Nuevo León", "Ciudad de México"],
}
TIERS = ["bronze", "silver", "gold", "platinum"]
TAGS = ["newsletter", "vip", "sale-hunter", "eco", "outdoor", "tech", "fashion", "family", "pets", "sports"]
DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "proton.me"]


def condition(rng):
    kind = rng.randrange(12)
    if kind == 0:
        return {"attribute": "country", "op": "equals", "value": rng.choice(list(COUNTRIES))}
    if kind == 1:
        country = rng.choice(list(COUNTRIES))
        states = sorted(rng.sample(COUNTRIES[country], min(3, len(COUNTRIES[country]))))
        return {"attribute": "state", "op": "in", "values": states}
    if kind == 2:
        return {"attribute": "age", "op": "gte", "value": rng.choice([18, 21, 25, 35, 50, 65])}
    if kind == 3:
        lo = rng.choice([18, 25, 35, 45])
        return {"attribute": "age", "op": "between", "values": [lo, lo + 10]}
    if kind == 4:
        return {"attribute": "loyalty_tier", "op": "in", "values": sorted(rng.sample(TIERS, 2))}
    if kind == 5:
        return {"attribute": "email", "op": "ends_with", "value": "@" + rng.choice(DOMAINS)}
    if kind == 6:
        return {"attribute": "email", "op": "contains", "value": rng.choice(["smith", "GARCIA", "chen"]), "ignore_case": True}
    if kind == 7:
        return {"attribute": "city", "op": "starts_with", "value": rng.choice(["San", "M", "To", "Ca"])}
    if kind == 8:
        return {"attribute": "last_visit_at", "op": "within_last", "value": rng.choice(["30d", "90d", "180d"])}
    if kind == 9:
        return {"attribute": "tags", "op": "contains", "value": rng.choice(TAGS)}
    if kind == 10:
        return {"attribute": "total_spend", "op": "gt", "value": rng.choice([100, 500, 1000, 2000])}
    return {"attribute": rng.choice(["age", "state", "loyalty_tier", "brand_conscious"]), "op": "exists"}


def distinct(conditions):
    seen, out = set(), []
    for c in conditions:
        key = json.dumps(c, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def group(i, rng):
    include = [{"match": "all", "conditions": distinct(condition(rng) for _ in range(rng.randint(1, 3)))}
               for _ in range(rng.randint(1, 2))]
    exclude = []
    if rng.random() < 0.4:
        exclude.append({"match": "any", "conditions": [
            {"attribute": "age", "op": "lt", "value": 18},
            {"attribute": "age", "op": "not_exists"}]})
    if i >= 10 and rng.random() < 0.15:
        include[0]["conditions"].append({"op": "in group", "value": f"g{rng.randrange(i):03d}"})
    definition = {"name": f"Benchmark group {i}", "include": include, "exclude": exclude}
    if rng.random() < 0.05:
        definition["static"] = {"include": [rng.randrange(1, 1000) for _ in range(5)],
                                "exclude": [rng.randrange(1, 1000) for _ in range(5)]}
    return definition


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    os.makedirs(out, exist_ok=True)
    for i in range(n):
        rng = random.Random(i)
        with open(os.path.join(out, f"g{i:03d}.json"), "w") as f:
            json.dump(group(i, rng), f, indent=1)


if __name__ == "__main__":
    main()
