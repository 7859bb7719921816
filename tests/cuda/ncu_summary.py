# Aggregates `ncu --csv --page raw --print-units base --metrics gpu__time_duration.sum` output per
# kernel name, e.g. for `ncu --profile-from-start off ... bench_cuda_model_ops --profile 16x256`.
import csv, sys, collections
rows = list(csv.reader(open(sys.argv[1])))
hdr_i = next(i for i, r in enumerate(rows) if "Kernel Name" in r)
hdr = rows[hdr_i]
ki, ti = hdr.index("Kernel Name"), hdr.index("gpu__time_duration.sum")
agg = collections.defaultdict(lambda: [0, 0.0])
total = 0.0
for r in rows[hdr_i + 1:]:
    if len(r) <= ti: continue
    try: t = float(r[ti].replace(",", ""))
    except ValueError: continue
    name = r[ki][:90]
    agg[name][0] += 1; agg[name][1] += t; total += t
print(f"{'kernel':92s} {'n':>4s} {'total us':>9s} {'mean us':>8s}")
for name, (n, t) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
    print(f"{name:92s} {n:4d} {t/1e3:9.1f} {t/1e3/n:8.2f}")
print(f"total kernels {sum(v[0] for v in agg.values())}, total {total/1e3:.1f} us")
