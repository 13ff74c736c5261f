#!/usr/bin/env python3
"""Import check of src/ (docs/architecture.md): no import circle, no import from a layer to one
below it in the list. backend/kernels/names.ts and bn/columns.ts are dependency-free and may be imported from above
(nn/, config/)."""
import collections, os, re, sys
LAYERS = ['util', 'nn', 'config', 'backend', 'data', 'eval', 'bn', 'run', 'train', 'report', 'sweep', 'cli']
ALLOWED = {'src/backend/kernels/names.ts', 'src/bn/columns.ts'}
g = collections.defaultdict(set)
for root, _, files in os.walk('src'):
    for f in files:
        if not f.endswith('.ts'):
            continue
        p = os.path.join(root, f)
        for m in re.finditer(r"^(?:import|export)[^;]*?from\s+'(\.[^']+)'", open(p).read(), re.M | re.S):
            g[p].add(os.path.normpath(os.path.join(root, m.group(1))).replace('.js', '.ts'))
cycles, state, stack = [], {}, []
def dfs(u):
    state[u] = 1; stack.append(u)
    for v in sorted(g[u]):
        if state.get(v) == 1: cycles.append(stack[stack.index(v):] + [v])
        elif not state.get(v): dfs(v)
    stack.pop(); state[u] = 2
for u in sorted(g):
    if not state.get(u): dfs(u)
layer = lambda p: p.split('/')[1] if p.count('/') > 1 else None
upward = [(u, v) for u, vs in g.items() for v in vs if v not in ALLOWED and layer(u) in LAYERS and layer(v) in LAYERS and LAYERS.index(layer(v)) > LAYERS.index(layer(u))]
for c in cycles: print('import circle:', ' -> '.join(c))
for u, v in sorted(upward): print(f'upward import: {u} -> {v}')
print(f'{len(g)} files, {sum(map(len, g.values()))} imports, {len(cycles)} circles, {len(upward)} upward imports')
sys.exit(1 if cycles or upward else 0)
