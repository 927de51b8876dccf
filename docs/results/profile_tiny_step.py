import torch, torch.nn.functional as F
from mnistlab.models import create_model
from mnistlab.data import AugmentConfig, augment_batch
torch.set_num_threads(2)
torch.manual_seed(0)
model = create_model("tiny")
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = torch.randn(128,1,28,28); y = torch.randint(0,10,(128,))
g = torch.Generator().manual_seed(0)
aug = AugmentConfig(rotate_deg=7.0)
def step():
    inp = augment_batch(x, aug, g)
    loss = F.cross_entropy(model(inp), y)
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
for _ in range(5): step()
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(40): step()
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))
