// docs/architecture.md's layering, checked: no import circle in src/, no import to a lower layer.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';

it('src/ has no import circle and no import from a layer to one below it', () => {
  const r = spawnSync('python3', ['scripts/check-layers.py'], { cwd: join(__dirname, '..'), encoding: 'utf8' });
  expect(r.stdout).toMatch(/ 0 circles, 0 upward imports/);
  expect(r.status).toBe(0);
});
