import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../../src/store/index.js';
import { TempDirs, expectCode, modeOf, requestInput } from './helpers.js';

const temp = new TempDirs();
const open: Store[] = [];
const savedEnv = process.env.TRUSTRUN_PASSPHRASE;

afterEach(async () => {
  for (const s of open.splice(0)) await s.close().catch(() => undefined);
  temp.cleanup();
  if (savedEnv === undefined) delete process.env.TRUSTRUN_PASSPHRASE;
  else process.env.TRUSTRUN_PASSPHRASE = savedEnv;
});

async function openAt(dataDir: string, passphrase?: string): Promise<Store> {
  const store = await openStore({ dataDir, passphrase });
  open.push(store);
  return store;
}

/** Writes a request, closes the store, reopens it and reads the request back. */
async function roundTrip(dataDir: string, first?: string, second?: string) {
  const a = await openAt(dataDir, first);
  const s = a.startSession({ kind: 'proxy', level: 'headers' });
  const id = await a.addRequest(requestInput(s.id, { url: '/kept?x=1' }));
  await a.close();
  const b = await openAt(dataDir, second);
  return b.getRequest(id)?.url;
}

describe('key files', () => {
  it('creates owner-only files and directories even under umask 000', async () => {
    const dataDir = join(temp.make(), 'data');
    const old = process.umask(0);
    try {
      const store = await openAt(dataDir);
      const s = store.startSession({ kind: 'proxy', level: 'headers' });
      await store.addRequest(requestInput(s.id));
      expect(modeOf(dataDir)).toBe(0o700);
      expect(modeOf(join(dataDir, 'keys'))).toBe(0o700);
      expect(modeOf(join(dataDir, 'keys', 'master.key'))).toBe(0o600);
      expect(modeOf(join(dataDir, 'trustrun.db'))).toBe(0o600);
      expect(modeOf(join(dataDir, 'trustrun.db-wal'))).toBe(0o600);
      expect(modeOf(join(dataDir, 'trustrun.db-shm'))).toBe(0o600);
      expect(readFileSync(join(dataDir, 'keys', 'master.key'))).toHaveLength(32);
    } finally {
      process.umask(old);
    }
  });

  it('keeps the master key across reopenings', async () => {
    const dataDir = temp.make();
    expect(await roundTrip(dataDir)).toBe('/kept?x=1');
  });

  it('refuses a master key file that group or others can read', async () => {
    const dataDir = temp.make();
    await (await openAt(dataDir)).close();
    chmodSync(join(dataDir, 'keys', 'master.key'), 0o644);
    const err = await expectCode(() => openAt(dataDir), 'TR_KEY');
    expect(err.message).toMatch(/master\.key is accessible by group or others \(mode 0644\)/);
  });

  it('refuses a master key of the wrong size or from another database', async () => {
    const dataDir = temp.make();
    await (await openAt(dataDir)).close();
    const keyFile = join(dataDir, 'keys', 'master.key');
    writeFileSync(keyFile, Buffer.alloc(16), { mode: 0o600 });
    await expectCode(() => openAt(dataDir), 'TR_KEY');
    writeFileSync(keyFile, Buffer.alloc(32, 9), { mode: 0o600 });
    const err = await expectCode(() => openAt(dataDir), 'TR_KEY');
    expect(err.message).toMatch(/does not belong to the database/);
  });

  it('does not make a new key when the database already has sealed data', async () => {
    const dataDir = temp.make();
    await (await openAt(dataDir)).close();
    rmSync(join(dataDir, 'keys', 'master.key'));
    const err = await expectCode(() => openAt(dataDir), 'TR_KEY');
    expect(err.message).toMatch(/master key is missing/);
  });
});

describe('passphrase mode', () => {
  it('a missing passphrase.json is named as the file to restore', async () => {
    const dataDir = temp.make();
    await (await openAt(dataDir, 'correct horse')).close();
    rmSync(join(dataDir, 'keys', 'passphrase.json'));
    const err = await expectCode(() => openAt(dataDir, 'correct horse'), 'TR_KEY');
    expect(err.message).toMatch(/master key is missing/);
    expect((err as { hint?: string }).hint).toMatch(/keys\/passphrase\.json/);
  });

  it('derives the key with Argon2id and opens the data with the right passphrase', async () => {
    const dataDir = temp.make();
    expect(await roundTrip(dataDir, 'correct horse', 'correct horse')).toBe('/kept?x=1');
    const file = JSON.parse(readFileSync(join(dataDir, 'keys', 'passphrase.json'), 'utf8'));
    expect(file).toMatchObject({ kdf: 'argon2id', argon2Version: 19, passes: 1, memoryKiB: 47104 });
    expect(modeOf(join(dataDir, 'keys', 'passphrase.json'))).toBe(0o600);
    expect(() => readFileSync(join(dataDir, 'keys', 'master.key'))).toThrow(/ENOENT/);
  });

  it('refuses a wrong passphrase with a clear TR_KEY error', async () => {
    const dataDir = temp.make();
    await (await openAt(dataDir, 'correct horse')).close();
    const err = await expectCode(() => openAt(dataDir, 'battery staple'), 'TR_KEY');
    expect(err.message).toBe('wrong passphrase for this data directory');
  });

  it('reads TRUSTRUN_PASSPHRASE and asks for it when it is missing', async () => {
    const dataDir = temp.make();
    process.env.TRUSTRUN_PASSPHRASE = 'from the environment';
    await (await openAt(dataDir)).close();
    delete process.env.TRUSTRUN_PASSPHRASE;
    const err = await expectCode(() => openAt(dataDir), 'TR_KEY');
    expect(err.message).toMatch(/protected by a passphrase/);
    expect((err as { hint?: string }).hint).toMatch(/TRUSTRUN_PASSPHRASE/);
    process.env.TRUSTRUN_PASSPHRASE = 'from the environment';
    await (await openAt(dataDir)).close();
  });

  it('refuses a passphrase for a directory that uses a key file', async () => {
    const dataDir = temp.make();
    await (await openAt(dataDir)).close();
    const err = await expectCode(() => openAt(dataDir, 'anything'), 'TR_KEY');
    expect(err.message).toMatch(/protected by a key file/);
  });
});
