// `bnlab config`: every knob with its default and meaning, or a config resolved with overrides.
import type { Command } from 'commander';
import { describeConfig, dumpConfig, loadConfig } from '../config/load.js';

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerConfig(program: Command): void {
  program
    .command('config')
    .description('print every config key with its default and meaning, or (with --config/--set) the resolved config')
    .option('-c, --config <file>', 'YAML config to resolve; repeat to merge several as train does, later ones win', collect, [])
    .option('--set <key=value>', 'override a key (repeatable)', collect, [])
    .action((o: { config: string[]; set: string[] }) => {
      process.stdout.write(o.config.length || o.set.length ? dumpConfig(loadConfig(o.config, o.set)) : describeConfig());
    });
}
