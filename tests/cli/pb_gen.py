"""Large pabulib files for tests and benchmarks, shaped like Warsaw's.

Warsaw's city-wide files hold ~100 projects and ~100,000 approval ballots of a few
to fifteen projects each, with voter features (age, sex, district). `warsaw_like`
writes such a file from a seed, so every run gets the same bytes.
"""

from __future__ import annotations

import random

DISTRICTS = ("Bemowo", "Mokotow", "Praga-Polnoc", "Srodmiescie", "Ursynow", "Wola", "Zoliborz")


def warsaw_like(
    projects: int = 100, voters: int = 100_000, *, seed: int = 2024, rule: str = "greedy"
) -> bytes:
    """A pabulib file of `projects` projects and `voters` approval ballots.

    Popularity follows a Zipf-like curve; each ballot approves 3 to 15 projects.
    The budget is a quarter of the total cost.
    """
    rng = random.Random(seed)
    ids = [str(100 + i) for i in range(projects)]
    costs = {p: rng.randrange(20_000, 2_000_000, 100) for p in ids}
    weights = [1 / (rank + 1) for rank in range(projects)]
    lines = [
        "META",
        "key;value",
        "description;Budzet obywatelski (generated)",
        "country;Poland",
        "unit;Warszawa",
        "instance;2024",
        f"num_projects;{projects}",
        f"num_votes;{voters}",
        f"budget;{sum(costs.values()) // 4}",
        "vote_type;approval",
        f"rule;{rule}",
        "PROJECTS",
        "project_id;cost;name",
    ]
    lines += [f"{p};{costs[p]};Projekt {p}: zielone podworko i lawki {p}" for p in ids]
    lines += ["VOTES", "voter_id;vote;age;sex;district"]
    for v in range(voters):
        ballot = set(rng.choices(ids, weights, k=rng.randint(3, 15)))
        lines.append(
            f"{v + 1};{','.join(sorted(ballot))};{rng.randint(13, 95)};"
            f"{rng.choice('MF')};{rng.choice(DISTRICTS)}"
        )
    return ("\n".join(lines) + "\n").encode()
