"""Which statistic of the logit distribution should the "auto" stop match? The step at which each
candidate rule fires on a 256-sample pilot (DGflow KL, fixed eta, seed 7), per MNIST model: the mean,
the 10/25/50% quantiles reaching those of 1,000 held-out test images, and the step minimising the
1-D Wasserstein distance between the two logit distributions. Read against the classifier FID per
step of benchmarks/auto_step.py's sweep at the same eta.

    python benchmarks/auto_stop_rules.py sndcgan,ns,vae,oc 0.1 MODELS_ROOT NS_CKPT OC_CKPT DATA
"""
import json
import sys

import torch

from dgflow import refine
from dgflow.data import load_mnist
from dgflow.ratio import DensityRatio
from dgflow.zoo import load_checkpoint

torch.set_num_threads(1)
R, NS, OC, DATA = (sys.argv[3] + "/", sys.argv[4], sys.argv[5], sys.argv[6]) if len(sys.argv) > 6 else (
    "runs/mnist/", "runs/mnist/ns/checkpoint.pt", "runs/mnist/oc/checkpoint.pt", "../shared/data")
files = {"sndcgan": (R+"sndcgan/checkpoint.pt", R+"sndcgan/checkpoint.pt", None),
         "ns": (NS, NS, None),
         "vae": (R+"vae/checkpoint.pt", R+"sndcgan/checkpoint.pt", R+"vae-corrector/checkpoint.pt"),
         "oc": (NS, OC, None)}
test, _ = load_mnist(DATA, split="test")
held = test[torch.randperm(len(test), generator=torch.Generator().manual_seed(40_000))[:1000]]
out = {}
for model in sys.argv[1].split(","):
    g, d, c = files[model]
    G = load_checkpoint(g)[0]["generator"]
    D = load_checkpoint(d)[0]["discriminator"]
    C = load_checkpoint(c)[0]["corrector"] if c else None
    with torch.no_grad():
        real = DensityRatio(D, C)(held)
    qs = torch.tensor([0.1, 0.25, 0.5])
    rq = torch.quantile(real, qs)
    for eta in [float(e) for e in sys.argv[2].split(",")]:
        r = refine(G, D, corrector=C, n=256, latent_shape=(32,), eta=eta, gamma=0.01, steps=40, save_interval=1,
                   keep_samples=False, progress=False, seed=7, batch_size=256)
        L = r.logit_history  # [41, 256]
        fire = {}
        fire["mean"] = next((k for k in range(41) if L[k].mean() >= real.mean()), None)
        for q, v in zip(qs.tolist(), rq.tolist()):
            fire[f"q{int(q*100)}"] = next((k for k in range(41) if torch.quantile(L[k], q) >= v), None)
        w1 = [float((torch.sort(L[k]).values - torch.quantile(real, (torch.arange(256) + 0.5) / 256)).abs().mean()) for k in range(41)]
        fire["w1min"] = int(torch.tensor(w1).argmin())
        print(model, eta, fire, "real mean %.2f q10 %.2f q50 %.2f" % (real.mean(), rq[0], rq[2]), "base mean %.2f q10 %.2f" % (L[0].mean(), torch.quantile(L[0], 0.1)), flush=True)
        out[f"{model}-{eta}"] = fire
print(json.dumps(out))
