"""scripts/compare-builds.sh's OUT_DIR: its old/ and new/ run folders compared, metrics.csv and eval.csv
cells (timing columns aside) and checkpoint tensors. Usage: python3 scripts/compare-builds.py OUT_DIR"""
import csv, json, struct, sys, os, hashlib
OUT = sys.argv[1]
TIMING = {'epoch_seconds', 'train_images_per_s', 'precise_seconds'}
def rows(p):
    with open(p) as f: return list(csv.DictReader(f))
def ckpt(p):
    b = open(p, 'rb').read()
    # bnlab checkpoint v2: 8-byte magic, u32 header length, 32-byte header SHA-256, JSON header {meta, index}; each entry has its tensor's SHA-256
    n = struct.unpack('<I', b[8:12])[0]
    h = json.loads(b[44:44 + n])
    return {e['name']: e['sha256'] for e in h['index']}
for run in ['default', 'smoke', 'frozen']:
    o, n = f'{OUT}/old/{run}', f'{OUT}/new/{run}'
    mo, mn = rows(f'{o}/metrics.csv'), rows(f'{n}/metrics.csv')
    diffs = []
    for a, b in zip(mo, mn):
        for k in sorted(set(a) | set(b)):
            if k in TIMING: continue
            if a.get(k, '') != b.get(k, ''): diffs.append(f"epoch {a['epoch']} {k}: old '{a.get(k, '')}' new '{b.get(k, '')}'")
    print(f'{run}: metrics.csv {len(mo)} vs {len(mn)} rows; columns old {len(mo[0])} new {len(mn[0])}; cell differences: {diffs or "none"}')
    if os.path.exists(f'{o}/eval.csv'):
        eo, en = rows(f'{o}/eval.csv'), rows(f'{n}/eval.csv')
        ed = [f"row {i}: {k} old '{a[k]}' new '{b.get(k)}'" for i, (a, b) in enumerate(zip(eo, en)) for k in a if a[k] != b.get(k)]
        print(f'{run}: eval.csv {len(eo)} vs {len(en)} rows; differences: {ed or "none"}')
    for f in sorted(os.listdir(f'{o}/checkpoints')):
        if not f.endswith('.ckpt'): continue
        to, tn = ckpt(f'{o}/checkpoints/{f}'), ckpt(f'{n}/checkpoints/{f}')
        only_o = sorted(set(to) - set(tn)); only_n = sorted(set(tn) - set(to))
        same = [k for k in set(to) & set(tn) if to[k] == tn[k]]
        print(f'{run}: {f}: {len(same)} of {len(set(to) & set(tn))} shared tensors bit-identical; only old: {len(only_o)} ({", ".join(sorted({k.split("/")[0] for k in only_o})) or "-"}); only new: {len(only_n)}')
