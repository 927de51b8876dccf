"""Summary beside a gradient-measured receptive field on public course models (not in the test
corpus): python lab/summary/outside_check.py, with the models fetched to /tmp/outside/model_N.py
(their sources are named in lab/summary/outside-models.txt; their code is not committed)."""

import importlib.util
import sys

sys.path.insert(0, "tests")
from mnistlab.models.summary import checklist, model_card  # noqa: E402
from test_summary import _positive, computed_span, measured_span  # noqa: E402

for n in (1, 2, 3):
    path = f"/tmp/outside/model_{n}.py"
    header = open(path).read().splitlines()[:2]
    spec = importlib.util.spec_from_file_location(f"m{n}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print(f"== model_{n}: {' '.join(line.strip('# ') for line in header)}")
    for item in checklist(model_card(module.Net())):
        mark = "·" if item.ok is None else "✓" if item.ok else "✗"
        print(f"   {mark} {item.name}: {item.detail}")
    model = _positive(module.Net())
    head = model_card(model).head
    span, index, centre = measured_span(model, 28, ())
    large = 28 + 4 * max(head.rf)
    far, _, _ = measured_span(model, large, (), index)
    rf = (far[0][1] - far[0][0] + 1, far[1][1] - far[1][0] + 1)
    print(
        f"   gradient: at 28x28 rows {span[0]} cols {span[1]} "
        f"(computed {computed_span(head, centre, 28)}); at {large}x{large} rows {far[0]} -> "
        f"RF {rf[0]}x{rf[1]} (computed {head.rf[0]}x{head.rf[1]})"
    )
