"""PyTorch's training samples/s on one thread, batch 32, for bench-throughput.ts: the reference
design's own models and MNIST reader (its folder is on sys.path), its worker's training step
(SGD, cross-entropy), warm runs first, then the median of timed runs. Prints one JSON line."""
import json, statistics, sys, time

reference, model_name, samples, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, reference)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from models import get_model  # noqa: E402
import mnist  # noqa: E402

torch.set_num_threads(1)
torch.manual_seed(1)
x, y = mnist.load("train")
x, y = x[:samples], y[:samples]
model = get_model(model_name)
opt = torch.optim.SGD(model.parameters(), lr=0.05)


def epoch():
    perm = torch.randperm(len(x))
    started = time.perf_counter()
    for i in range(0, len(x) - batch + 1, batch):
        idx = perm[i:i + batch]
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return (len(x) - len(x) % batch) / (time.perf_counter() - started)


for _ in range(2):
    epoch()
print(json.dumps({"rate": statistics.median(epoch() for _ in range(3))}))
