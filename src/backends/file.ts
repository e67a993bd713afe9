import { createHash, randomBytes } from 'node:crypto';
import { chmod, link, mkdir, open, readFile, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
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
const TEMPORARY = /^\..*\.tmp$/;
/** A temporary file this old was left by a writer that died: no write takes a minute. */
const ABANDONED_AFTER = 60_000;

interface Entry {
  value: unknown;
  expiresAt: number | null;
}

function codeOf(error: unknown): string | undefined {
  return error instanceof Error && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
}

function isMissing(error: unknown): boolean {
  return codeOf(error) === 'ENOENT';
}

/** Something that is not a file stands where a cache file should (a directory, say). */
function isInTheWay(error: unknown): boolean {
  const code = codeOf(error);
  return code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR';
}

function expiryOf(ttl: TimeToLive): number | null {
  return ttl === null ? null : Date.now() + ttl;
}

/**
 * One file per key in the `location` directory, named by the MD5 of the made key. A file holds its
 * expiry and the serialized, deflated value. Writes go to a temporary file that is renamed into place,
 * so a reader (in any process) sees a whole old file or a whole new one, never part of one. An empty,
 * truncated or corrupt file reads as a miss and is deleted; anything else in a cache file's place (a
 * directory) reads as a miss and is replaced by the next write. A directory the cache creates is made
 * 0700, and files 0600: cached pages may hold one user's data. An existing directory keeps its mode.
 * Temporary files that a writer killed mid-write left behind are removed by `clear()` and by the cull.
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

  /** Creates the directory if it is missing; one that exists (a shared /tmp, a symlink) is left as it is. */
  private ensureDirectory(): Promise<void> {
    this.directoryReady ??= (async () => {
      const created = await mkdir(this.directory, { recursive: true, mode: 0o700 });
      // The umask may have taken bits away; only a directory made here is ours to set.
      if (created !== undefined) await chmod(this.directory, 0o700);
    })();
    return this.directoryReady;
  }

  private async namesInDirectory(): Promise<string[]> {
    try {
      return await readdir(this.directory);
    } catch (error) {
      if (isMissing(error)) return [];
      throw error;
    }
  }

  /** The cache files and the temporary files in the directory, as paths. */
  private async files(): Promise<{ cacheFiles: string[]; temporaryFiles: string[] }> {
    const names = await this.namesInDirectory();
    const paths = (matching: (name: string) => boolean) => names.filter(matching).map((name) => join(this.directory, name));
    return { cacheFiles: paths((name) => name.endsWith(SUFFIX)), temporaryFiles: paths((name) => TEMPORARY.test(name)) };
  }

  /** Removes the temporary files of writers that died mid-write: all of them, or those older than a minute. */
  private async removeTemporaryFiles(temporary: readonly string[], opts: { abandonedOnly: boolean }): Promise<void> {
    const oldest = Date.now() - ABANDONED_AFTER;
    await Promise.all(
      temporary.map(async (path) => {
        try {
          if (opts.abandonedOnly && (await stat(path)).mtimeMs > oldest) return;
          await this.remove(path);
        } catch (error) {
          if (!isMissing(error)) throw error;
        }
      }),
    );
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
      if (isMissing(error) || isInTheWay(error)) return undefined;
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

  /** A whole cache file in a new temporary file of the directory; the caller moves it into place. */
  private async temporaryFile(value: unknown, expiresAt: number | null): Promise<string> {
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
    return temporary;
  }

  private async write(path: string, value: unknown, expiresAt: number | null): Promise<void> {
    const temporary = await this.temporaryFile(value, expiresAt);
    try {
      await rename(temporary, path);
    } catch (error) {
      if (isMissing(error)) return; // a clear() removed the temporary file: the entry was cleared as it was written
      if (!isInTheWay(error)) {
        await this.remove(temporary);
        throw error;
      }
      await rm(path, { recursive: true, force: true });
      await rename(temporary, path);
    }
  }

  /**
   * A lock is a cache file created only if none exists (a hard link fails if its name is taken, in every
   * process), so it needs no read-then-write; one whose lease has ended is removed and taken again.
   */
  protected override async acquireLockEntry(key: string, token: string, lease: number): Promise<boolean> {
    const path = this.pathOf(key);
    const temporary = await this.temporaryFile(token, expiryOf(lease));
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          await link(temporary, path);
          return true;
        } catch (error) {
          if (codeOf(error) !== 'EEXIST') throw error;
          if ((await this.read(path)) !== undefined) return false;
        }
      }
      return false;
    } finally {
      await this.remove(temporary);
    }
  }

  /** Django's cull: once there are maxEntries files, delete a random 1/cullFrequency of them. */
  private async cullIfFull(): Promise<void> {
    const { cacheFiles, temporaryFiles } = await this.files();
    await this.removeTemporaryFiles(temporaryFiles, { abandonedOnly: true });
    const doomed = randomSample(cacheFiles, this.culling.toRemove(cacheFiles.length));
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
    const { cacheFiles, temporaryFiles } = await this.files();
    await this.removeTemporaryFiles(temporaryFiles, { abandonedOnly: false });
    await Promise.all(cacheFiles.map((path) => this.remove(path)));
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
