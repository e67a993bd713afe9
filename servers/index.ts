/**
 * Real servers for the backend tests and the benchmarks: redis-server, memcached and PostgreSQL from
 * Debian's packages, started on 127.0.0.1 on free ports with throwaway data directories, each on first
 * use, and stopped (by PID) when the run ends, also when tests fail. A missing binary is installed when
 * running as root; otherwise the run fails with the command to run.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const running: ChildProcess[] = [];
const scratch: string[] = [];
const isRoot = process.getuid?.() === 0;

/** The path of `binary`, installing `debianPackage` first when it is missing and we may. */
function requireBinary(binary: string, debianPackage: string, extraDirs: string[] = []): string {
  const find = () => {
    const dirs = [...(process.env.PATH ?? '').split(':'), ...extraDirs];
    return dirs.map((dir) => join(dir, binary)).find((path) => existsSync(path));
  };
  const found = find();
  if (found) return found;
  const command = `apt-get update && apt-get install -y ${debianPackage}`;
  if (!isRoot) throw new Error(`${binary} is not installed; the backend tests need it. Run: sudo sh -c '${command}'`);
  console.log(`[servers] ${binary} is missing; running: ${command}`);
  execFileSync('sh', ['-c', command], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  const installed = find();
  if (!installed) throw new Error(`${binary} is still missing after: ${command}`);
  return installed;
}

function postgresBinDirs(): string[] {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .sort((a, b) => Number(b) - Number(a))
    .map((version) => join(root, version, 'bin'));
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function scratchDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `fragcache-${name}-`));
  scratch.push(dir);
  return dir;
}

function idOf(flag: '-u' | '-g'): number {
  return Number(execFileSync('id', [flag, 'postgres']).toString().trim());
}

function start(command: string, args: string[], name: string, owner: { uid?: number; gid?: number } = {}): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], ...owner });
  let errors = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    errors = (errors + chunk.toString()).slice(-2000);
  });
  child.on('exit', (code, signal) => {
    if (code && !stopping) console.error(`[servers] ${name} exited with ${code ?? signal}: ${errors}`);
  });
  running.push(child);
  return child;
}

async function waitForPort(port: number, name: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`${name} did not start listening on 127.0.0.1:${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A server that a fault test kills and starts again, on the same port and with the same data. */
export interface RestartableServer {
  readonly port: number;
  /** Stops it (SIGKILL unless told otherwise) and resolves once it has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again; resolves once it listens. */
  start(): Promise<void>;
}

function restartable(port: number, name: string, launch: () => ChildProcess): RestartableServer {
  let child = launch();
  return {
    port,
    async stop(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill(signal);
      await exited;
    },
    async start() {
      child = launch();
      await waitForPort(port, name);
    },
  };
}

function once<T>(make: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => (pending ??= make());
}

// ---- Redis ----------------------------------------------------------------------------------------

/** A Redis of its own, which a fault test may kill and restart (empty, as after a crash). */
export async function startRedis(name: string, extra: string[] = []): Promise<RestartableServer> {
  const binary = requireBinary('redis-server', 'redis-server');
  const port = await freePort();
  const dir = scratchDir(name);
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...extra];
  const server = restartable(port, name, () => start(binary, args, name));
  await waitForPort(port, name);
  return server;
}

export function redisCli(port: number, ...args: string[]): string {
  return execFileSync(requireBinary('redis-cli', 'redis-tools'), ['-h', '127.0.0.1', '-p', String(port), ...args]).toString();
}

export interface RedisServers {
  url: string;
  replicaUrl: string;
  port: number;
  replicaPort: number;
}

/** A standalone Redis with one replica. */
export const redisServers = once<RedisServers>(async () => {
  const { port } = await startRedis('redis');
  const { port: replicaPort } = await startRedis('redis-replica', ['--replicaof', '127.0.0.1', String(port)]);
  const deadline = Date.now() + 20_000;
  while (!redisCli(replicaPort, 'info', 'replication').includes('master_link_status:up')) {
    if (Date.now() > deadline) throw new Error('the Redis replica did not connect to its primary');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { url: `redis://127.0.0.1:${port}/0`, replicaUrl: `redis://127.0.0.1:${replicaPort}/0`, port, replicaPort };
});

/** A Redis Cluster of three masters; resolves to their URLs. */
export const redisCluster = once<string[]>(async () => {
  const ports: number[] = [];
  for (let i = 0; i < 3; i++) {
    ports.push((await startRedis(`redis-cluster-${i}`, ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'])).port);
  }
  redisCli(ports[0]!, '--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes');
  const deadline = Date.now() + 30_000;
  while (!ports.every((port) => redisCli(port, 'cluster', 'info').includes('cluster_state:ok'))) {
    if (Date.now() > deadline) throw new Error('the Redis cluster did not reach cluster_state:ok');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return ports.map((port) => `redis://127.0.0.1:${port}`);
});

// ---- Memcached ------------------------------------------------------------------------------------

/** Starts one memcached; resolves to its `host:port` and the means to kill and restart it. */
export async function startMemcached(name = 'memcached'): Promise<{ location: string; server: RestartableServer }> {
  const binary = requireBinary('memcached', 'memcached');
  const port = await freePort();
  const args = ['-l', '127.0.0.1', '-p', String(port), '-U', '0', '-m', '64'];
  if (isRoot) args.push('-u', 'nobody');
  const server = restartable(port, name, () => start(binary, args, name));
  await waitForPort(port, name);
  return { location: `127.0.0.1:${port}`, server };
}

/** Two memcached servers. */
export const memcachedServers = once(async () => [(await startMemcached('memcached-1')).location, (await startMemcached('memcached-2')).location]);

// ---- PostgreSQL -----------------------------------------------------------------------------------

export interface PostgresServer {
  connectionString: string;
  server: RestartableServer;
}

/** PostgreSQL in a fresh data directory, run as the postgres user when we are root (it refuses root). */
export async function startPostgres(name: string): Promise<PostgresServer> {
  const initdb = requireBinary('initdb', 'postgresql', postgresBinDirs());
  const postgres = requireBinary('postgres', 'postgresql', postgresBinDirs());
  const port = await freePort();
  const dir = scratchDir('postgres');
  const data = join(dir, 'data');
  // PostgreSQL refuses to run as root: when we are root, it runs as the postgres user.
  const owner = isRoot ? { uid: idOf('-u'), gid: idOf('-g') } : {};
  if (isRoot) {
    chmodSync(dir, 0o755);
    chownSync(dir, owner.uid!, owner.gid!);
  }
  execFileSync(initdb, ['-D', data, '-U', 'fragcache', '--auth=trust', '--no-sync', '-E', 'UTF8'], { stdio: 'ignore', ...owner });
  const args = ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off'];
  const server = restartable(port, name, () => start(postgres, args, name, owner));
  await waitForPort(port, name, 30_000);
  return { connectionString: `postgresql://fragcache@127.0.0.1:${port}/postgres`, server };
}

/** The PostgreSQL the backend tests share. */
export const postgresServer = once(() => startPostgres('postgres'));

// ---- stopping -------------------------------------------------------------------------------------

let stopping = false;

/** Stops every server started (SIGTERM, then SIGKILL) and removes their data directories. */
export async function stopServers(): Promise<void> {
  stopping = true;
  await Promise.all(
    running.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const force = setTimeout(() => child.kill('SIGKILL'), 5000);
          child.once('exit', () => {
            clearTimeout(force);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
  running.length = 0;
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
}

// A crash or Ctrl-C must not leave servers behind.
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});
