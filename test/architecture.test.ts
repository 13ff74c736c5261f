// docs/architecture.md's layering, checked: no import circle in src/, no import to a lower layer.
// And issue 31's limit: no function in src/cli/*.ts longer than 80 lines, measured on the
// TypeScript compiler's syntax tree (a commander .action callback counts as a function too).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { API } from 'typescript/unstable/sync';
import { SyntaxKind, type Node, type SourceFile } from 'typescript/unstable/ast';
import { isFunctionLikeDeclaration } from 'typescript/unstable/ast/is';

const ROOT = join(__dirname, '..');
const MAX_FUNCTION_LINES = 80;

it('src/ has no import circle and no import from a layer to one below it', () => {
  const r = spawnSync('python3', ['scripts/check-layers.py'], { cwd: ROOT, encoding: 'utf8' });
  expect(r.stdout).toMatch(/ 0 circles, 0 upward imports/);
  expect(r.status).toBe(0);
});

interface FunctionSpan {
  where: string;
  lines: number;
}

/** What a reader calls a function: its name, the variable or property it is assigned to, or the call it is passed to. */
function nameOf(fn: Node, sf: SourceFile): string {
  const named = (fn as Node & { name?: Node }).name;
  if (named) return named.getText(sf);
  const parent = fn.parent;
  if (parent.kind === SyntaxKind.VariableDeclaration || parent.kind === SyntaxKind.PropertyAssignment) return (parent as Node & { name: Node }).name.getText(sf);
  if (parent.kind === SyntaxKind.CallExpression) {
    const callee = (parent as Node & { expression: Node }).expression;
    const method = callee.kind === SyntaxKind.PropertyAccessExpression ? `.${(callee as Node & { name: Node }).name.getText(sf)}` : callee.getText(sf);
    return `the callback passed to ${method}(...)`;
  }
  return `an anonymous ${SyntaxKind[fn.kind]}`;
}

/** Every function-like node of a file (declarations, methods, accessors, function expressions, arrows) and its lines, first to last. */
function functionSpans(sf: SourceFile, file: string): FunctionSpan[] {
  const spans: FunctionSpan[] = [];
  const visit = (node: Node): void => {
    if (isFunctionLikeDeclaration(node)) {
      const first = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const last = sf.getLineAndCharacterOfPosition(node.end).line;
      spans.push({ where: `${file}:${first + 1} ${nameOf(node, sf)}`, lines: last - first + 1 });
    }
    node.forEachChild(visit);
  };
  visit(sf);
  return spans;
}

it(`no function in src/cli/*.ts is longer than ${MAX_FUNCTION_LINES} lines (issue 31: split it into named steps)`, () => {
  const files = readdirSync(join(ROOT, 'src/cli')).filter((f) => f.endsWith('.ts')).map((f) => `src/cli/${f}`);
  const api = new API({ cwd: ROOT });
  let spans: FunctionSpan[];
  try {
    const program = api.updateSnapshot({ openProjects: [join(ROOT, 'tsconfig.json')] }).getProjects()[0].program;
    spans = files.flatMap((file) => {
      const sf = program.getSourceFile(join(ROOT, file));
      if (!sf) throw new Error(`${file} is not in tsconfig.json's program`);
      return functionSpans(sf, file);
    });
  } finally {
    api.close();
  }
  // The walk found the commands' functions (a walk that found nothing would pass vacuously).
  expect(spans.length).toBeGreaterThan(100);
  expect(spans.map((s) => s.where)).toEqual(expect.arrayContaining([expect.stringMatching(/^src\/cli\/train\.ts:\d+ registerTrain$/), expect.stringMatching(/^src\/cli\/main\.ts:\d+ /)]));
  const long = spans.filter((s) => s.lines > MAX_FUNCTION_LINES).map((s) => `${s.where}: ${s.lines} lines`);
  expect(long, `functions over ${MAX_FUNCTION_LINES} lines`).toEqual([]);
}, 60_000);

// Issue 31: a statistics mode's name and its metrics.csv columns are spelled in src/bn/ (and the
// schema) only; elsewhere code names them through MODE / MODE_FACTS, so a typo does not compile.
it('no mode name or metric column is spelled as a string outside src/bn/ and the config schema', () => {
  const spelled = /(['"`])(ema|precise|minibatch|composed|frozen|val_err_[a-z]+|train_err_nbs)\1/;
  const found: string[] = [];
  const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
  const files = walk(join(ROOT, 'src')).filter((f) => !f.includes(`${join('src', 'bn')}/`) && !f.endsWith(join('config', 'schema.ts')));
  expect(files.length).toBeGreaterThan(50);
  for (const f of files) {
    readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
      const code = line.trim();
      if (code.startsWith('//') || code.startsWith('*') || code.startsWith('/*')) return;
      if (spelled.test(code)) found.push(`${f.slice(ROOT.length + 1)}:${i + 1}: ${code.slice(0, 120)}`);
    });
  }
  expect(found).toEqual([]);
});
