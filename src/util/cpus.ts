// How many CPUs this process may actually use: the smallest of the affinity mask (Slurm's cpuset,
// taskset), the cgroup CPU quota (containers, Slurm with cgroup limits) and SLURM_CPUS_PER_TASK.
// Every thread pool is sized from it: a pool sized from all of the node's cores on a 2-CPU share
// runs many spinning threads per core and collapses (issue 12: 2078 -> 45 img/s).
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface CpuBudget {
  /** CPUs to size thread pools by (>= 1). */
  cpus: number;
  /** Why that number, for the log: each limit that was found. */
  reason: string;
}

/** cgroup v2 `cpu.max` ("max 100000" | "150000 100000") as CPUs; null when unlimited. */
export function parseCpuMax(text: string): number | null {
  const [quota, period] = text.trim().split(/\s+/);
  if (quota === 'max' || quota === undefined) return null;
  const q = Number(quota), p = Number(period ?? 100000);
  return q > 0 && p > 0 ? q / p : null;
}

/** cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` as CPUs; null when unlimited (-1). */
export function parseCfsQuota(quotaUs: string, periodUs: string): number | null {
  const q = Number(quotaUs.trim()), p = Number(periodUs.trim());
  return q > 0 && p > 0 ? q / p : null;
}

const read = (path: string): string | null => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
};

/** The tightest CPU quota of this process's cgroup and its ancestors (null: none). */
export function cgroupQuota(root = '/sys/fs/cgroup', procCgroup = read('/proc/self/cgroup') ?? ''): number | null {
  let best: number | null = null;
  const take = (v: number | null) => { if (v !== null && (best === null || v < best)) best = v; };
  for (const line of procCgroup.split('\n')) {
    const [, controllers, path] = line.split(':');
    if (path === undefined) continue;
    // v2 ("0::/a/b") or v1's cpu controller ("4:cpu,cpuacct:/a/b"): check the folder and each parent.
    const v2 = controllers === '';
    if (!v2 && !controllers.split(',').includes('cpu')) continue;
    const parts = path.split('/').filter(Boolean);
    for (let i = parts.length; i >= 0; i--) {
      const rel = parts.slice(0, i).join('/');
      if (v2) {
        const t = read(`${root}/${rel}/cpu.max`) ?? (i === parts.length ? read(`${root}/unified/${rel}/cpu.max`) : null);
        if (t) take(parseCpuMax(t));
      } else {
        const dir = [`${root}/${controllers}/${rel}`, `${root}/cpu/${rel}`].find((d) => read(`${d}/cpu.cfs_quota_us`) !== null);
        if (dir) take(parseCfsQuota(read(`${dir}/cpu.cfs_quota_us`)!, read(`${dir}/cpu.cfs_period_us`) ?? '100000'));
      }
    }
  }
  return best;
}

let cached: CpuBudget | null = null;

/** The CPUs this process may use and why (computed once). */
export function cpuBudget(): CpuBudget {
  if (cached) return cached;
  const limits: string[] = [];
  const cores = os.cpus().length;
  let cpus = os.availableParallelism();
  limits.push(cpus < cores ? `affinity mask ${cpus} of ${cores} cores` : `${cores} cores`);
  const quota = cgroupQuota();
  if (quota !== null) {
    limits.push(`cgroup quota ${quota.toFixed(2)} CPUs`);
    cpus = Math.min(cpus, Math.max(1, Math.floor(quota + 0.01)));
  }
  const slurm = Number(process.env.SLURM_CPUS_PER_TASK);
  if (Number.isInteger(slurm) && slurm >= 1) {
    limits.push(`SLURM_CPUS_PER_TASK=${slurm}`);
    cpus = Math.min(cpus, slurm);
  }
  cached = { cpus, reason: limits.join(', ') };
  return cached;
}
