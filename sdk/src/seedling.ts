/** The public `Seedling` class (being filled in: this is its signature). */
import type {
  ChangeEvent, ChildView, LocalVisitState, PlanItemView, SeedlingOptions, SyncStatus, Task, UserInfo, VisitInput, VisitView,
} from './types.ts';

const todo = (): never => {
  throw new Error('not implemented yet');
};

export class Seedling {
  readonly deviceId: string = '';
  static async open(_opts: SeedlingOptions): Promise<Seedling> { return todo(); }
  user(): UserInfo | null { return todo(); }
  async signIn(_username: string, _password: string, _deviceName?: string): Promise<UserInfo> { return todo(); }
  async signOut(): Promise<void> { return todo(); }
  async hasPin(): Promise<boolean> { return todo(); }
  async setPin(_pin: string): Promise<void> { return todo(); }
  lock(): void { todo(); }
  isLocked(): boolean { return todo(); }
  async unlock(_pin: string): Promise<boolean> { return todo(); }
  async recoverWithSignIn(_username: string, _password: string): Promise<void> { return todo(); }
  status(): SyncStatus { return todo(); }
  onChange(_listener: (event: ChangeEvent) => void): () => void { return todo(); }
  async sync(): Promise<SyncStatus> { return todo(); }
  startAutoSync(_opts?: { intervalMs?: number }): void { todo(); }
  stopAutoSync(): void { todo(); }
  async children(): Promise<ChildView[]> { return todo(); }
  async child(_id: string): Promise<ChildView | undefined> { return todo(); }
  async visits(_filter?: { childId?: string; state?: LocalVisitState }): Promise<VisitView[]> { return todo(); }
  async visit(_id: string): Promise<VisitView | undefined> { return todo(); }
  async saveVisit(_input: VisitInput, _opts: { submit: boolean }): Promise<VisitView> { return todo(); }
  async deleteDraft(_id: string): Promise<void> { return todo(); }
  async addPhoto(_visitId: string, _blob: Blob): Promise<{ id: string; sha256: string }> { return todo(); }
  async photoUrl(_sha256: string): Promise<string | null> { return todo(); }
  async tasks(): Promise<Task[]> { return todo(); }
  async planItems(_childId: string): Promise<PlanItemView[]> { return todo(); }
  async counts(): Promise<{ drafts: number; waiting: number; synced: number; returned: number }> { return todo(); }
}
