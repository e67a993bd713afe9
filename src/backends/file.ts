import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { deflateRaw, inflateRaw } from 'node:zlib';
import { BaseCache, Culling, NOT_A_NUMBER, type TimeToLive } from '../base.js';
import type { CacheParams, CullingOptions } from '../config.js';

const compress = promisify(deflateRaw);
const decompress = promisify(inflateRaw);

const SUFFIX = '.fragcache';
/** First line of every cache file: a format tag and the expiry (ms since the epoch, or "never"). */
const MAGIC = 'fragcache/1';
const NEWLINE = 0x0a;

interface Entry {
  value: unknown;
  expiresAt: number | null;
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}

function expiryOf(ttl: TimeToLive): number | null {
  return ttl === null ? null : Date.now() + ttl;
}

/**
 * One file per key in the `location` directory, named by the MD5 of the made key. A file holds its
 * expiry and the serialized, deflated value. Writes go to a temporary file that is renamed into place,
 * so a reader (in any process) sees a whole old file or a whole new one, never part of one. An empty,
 * truncated or corrupt file reads as a miss and is deleted. The directory is created 0700 and files
 * 0600: cached pages may hold one user's data.
 */
export class FileBasedCache extends BaseCache {
  static readonly optionNames = Culling.optionNames;

  private readonly directory: string;
  private directoryReady: Promise<void> | undefined;
  private readonly culling: Culling;

  constructor(location: string | string[] | undefined, params: CacheParams<CullingOptions>) {
    super(location, params);
    if (typeof location !== 'string' || location === '') throw new TypeError('The file backend needs a directory as its location');
    this.culling = new Culling(params.options);
    this.directory = location;
  }

  private pathOf(key: string): string {
    return join(this.directory, createHash('md5').update(key).digest('hex') + SUFFIX);
  }

  private ensureDirectory(): Promise<void> {
    this.directoryReady ??= (async () => {
      await mkdir(this.directory, { recursive: true, mode: 0o700 });
      await chmod(this.directory, 0o700);
    })();
    return this.directoryReady;
  }

  private async cacheFiles(): Promise<string[]> {
    try {
      return (await readdir(this.directory)).filter((name) => name.endsWith(SUFFIX)).map((name) => join(this.directory, name));
    } catch (error) {
      if (isMissing(error)) return [];
      throw error;
    }
  }

  private async remove(path: string): Promise<boolean> {
    try {
      await unlink(path);
      return true;
    } catch (error) {
      if (isMissing(error)) return false;
      throw error;
    }
  }

  /** The live entry in `path`, or undefined; expired and unreadable files are deleted on the way. */
  private async read(path: string): Promise<Entry | undefined> {
    let contents: Buffer;
    try {
      contents = await readFile(path);
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    const entry = await this.parse(contents);
    if (entry === undefined || (entry.expiresAt !== null && entry.expiresAt <= Date.now())) {
      await this.remove(path);
      return undefined;
    }
    return entry;
  }

  private async parse(contents: Buffer): Promise<Entry | undefined> {
    const newline = contents.indexOf(NEWLINE);
    if (newline === -1) return undefined;
    const [magic, expiry] = contents.subarray(0, newline).toString('latin1').split(' ');
    const expiresAt = expiry === 'never' ? null : Number(expiry);
    if (magic !== MAGIC || (expiresAt !== null && !Number.isFinite(expiresAt))) return undefined;
    try {
      return { value: this.serializer.loads(await decompress(contents.subarray(newline + 1))), expiresAt };
    } catch {
      return undefined;
    }
  }

  private async write(path: string, value: unknown, expiresAt: number | null): Promise<void> {
    const data = this.serializer.dumps(value);
    const body = await compress(typeof data === 'string' ? Buffer.from(data) : data);
    const header = Buffer.from(`${MAGIC} ${expiresAt ?? 'never'}\n`, 'latin1');
    await this.ensureDirectory();
    const temporary = join(this.directory, `.${randomBytes(8).toString('hex')}.tmp`);
    const file = await open(temporary, 'wx', 0o600);
    try {
      await file.writev([header, body]);
    } finally {
      await file.close();
    }
    try {
      await rename(temporary, path);
    } catch (error) {
      await this.remove(temporary);
      throw error;
    }
  }

  /** Django's cull: once there are maxEntries files, delete a random 1/cullFrequency of them. */
  private async cullIfFull(): Promise<void> {
    const files = await this.cacheFiles();
    const doomed = randomSample(files, this.culling.toRemove(files.length));
    await Promise.all(doomed.map((path) => this.remove(path)));
  }

  protected async getEntry(key: string): Promise<unknown> {
    return (await this.read(this.pathOf(key)))?.value;
  }

  protected async setEntry(key: string, value: unknown, ttl: TimeToLive): Promise<void> {
    await this.cullIfFull();
    await this.write(this.pathOf(key), value, expiryOf(ttl));
  }

  protected async addEntry(key: string, value: unknown, ttl: TimeToLive): Promise<boolean> {
    if (await this.read(this.pathOf(key))) return false;
    await this.setEntry(key, value, ttl);
    return true;
  }

  protected async deleteEntry(key: string): Promise<boolean> {
    const path = this.pathOf(key);
    return (await this.read(path)) !== undefined && (await this.remove(path));
  }

  protected async hasEntry(key: string): Promise<boolean> {
    return (await this.read(this.pathOf(key))) !== undefined;
  }

  protected async touchEntry(key: string, ttl: TimeToLive): Promise<boolean> {
    const path = this.pathOf(key);
    const entry = await this.read(path);
    if (entry === undefined) return false;
    await this.write(path, entry.value, expiryOf(ttl));
    return true;
  }

  /** Read, add, write back with the same expiry: atomic per file, not across processes (as in Django). */
  protected async incrEntry(key: string, delta: number): Promise<number | undefined | typeof NOT_A_NUMBER> {
    const path = this.pathOf(key);
    const entry = await this.read(path);
    if (entry === undefined) return undefined;
    if (typeof entry.value !== 'number') return NOT_A_NUMBER;
    const value = entry.value + delta;
    await this.write(path, value, entry.expiresAt);
    return value;
  }

  /** Deletes the cache files in the directory, and nothing else that may live there. */
  protected async clearEntries(): Promise<void> {
    await Promise.all((await this.cacheFiles()).map((path) => this.remove(path)));
  }
}

function randomSample<T>(items: readonly T[], count: number): T[] {
  const pool = [...items];
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(Math.random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, count);
}
