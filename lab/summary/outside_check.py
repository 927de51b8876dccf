"""Summary vs gradient measurement on 3 public course models (not in the corpus)."""
import importlib.util, sys
sys.path.insert(0, "tests")
from test_summary import measured_span, _positive, computed_span
from mnistlab.models.summary import model_card, checklist, Spatial
for n in (1, 2, 3):
    path = f"/tmp/outside/model_{n}.py"
    src = open(path).read().splitlines()
    spec = importlib.util.spec_from_file_location(f"m{n}", path); mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    print(f"== model_{n}: {' '.join(l.strip('# ') for l in src[:2])}")
    card = model_card(mod.Net())
    for item in checklist(card):
        print(f"   {'·' if item.ok is None else '✓' if item.ok else '✗'} {item.name}: {item.detail}")
    model = _positive(mod.Net())
    head = model_card(model).head
    span, index, centre = measured_span(model, 28, ())
    large = 28 + 4 * max(head.rf)
    span_l, _, centre_l = measured_span(model, large, (), index)
    print(f"   gradient: at 28x28 rows {span[0]} cols {span[1]} (computed {computed_span(head, centre, 28)});"
          f" at {large}x{large} rows {span_l[0]} -> RF {span_l[0][1]-span_l[0][0]+1}x{span_l[1][1]-span_l[1][0]+1} (computed {head.rf[0]}x{head.rf[1]})")
