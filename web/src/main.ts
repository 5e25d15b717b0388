/**
 * The editor page for `/r/<room>`: one Y.Doc whose Y.Text `text` is bound to the text
 * area, synced with coedit over the stock y-websocket provider (opted into coedit's
 * "persisted" acks), kept offline in IndexedDB, with presence and an honest status line.
 */
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { IndexeddbPersistence } from 'y-indexeddb'
import { AUTH_PERMISSION_DENIED, COEDIT_OPT_IN_PARAM, COEDIT_PROTOCOL_VERSION, DEFAULT_TEXT_NAME, MESSAGE_AUTH } from '../../server/room/protocol.js'
import { TextareaBinding } from './binding.js'
import { byId } from './dom.js'
import { loadUser, saveName, MAX_NAME_LENGTH, type User } from './identity.js'
import { Presence } from './presence.js'
import { SaveStatus, countingWebSocket, type Connection, type Saved } from './status.js'
import { accessOf, tokenFromFragment } from './token.js'
import { HistoryClient } from './history-client.js'
import { HistoryPanel } from './history-panel.js'
import * as decoding from 'lib0/decoding'
import { decodeRoomPath } from '../../server/room/room-path.js'


const CONNECTION_TEXT: Record<Connection, string> = {
  connected: 'Connected',
  connecting: 'Connecting…',
  offline: 'Offline — reconnecting',
  closed: 'Disconnected',
}
const SAVED_TEXT: Record<Saved, string> = {
  saved: 'Saved',
  saving: 'Saving…',
  'offline-unsaved': 'Offline — not saved',
  offline: 'No unsaved edits',
  'read-only': 'Read-only — your edits are not saved',
}

/**
 * The room of `/r/<room>`, by the server's own rule (`%XX` decoded, a `%` that starts no
 * UTF-8 sequence kept: `/r/100%` and `/r/100%25` are both room `100%`), so that the page
 * and its WebSocket, which sends the name fully encoded, name the same room.
 */
function roomFromPath(): string | null {
  const room = decodeRoomPath(location.pathname.replace(/^\/r\//, ''))
  return room.length > 0 ? room : null
}

/** What one open room is made of: its document, the socket that syncs it and its offline copy. */
interface Session {
  room: string
  /** The access token from the page's fragment, if any (see token.ts). */
  token: string | undefined
  doc: Y.Doc
  ytext: Y.Text
  provider: WebsocketProvider
  /** Absent where the browser has no IndexedDB. */
  idb: IndexeddbPersistence | undefined
}

/** An address that names no room: say so, and offer nothing to type into or look back on. */
function showNoRoom(textarea: HTMLTextAreaElement): void {
  byId('connection').textContent = 'This address names no valid room.'
  textarea.disabled = true
  byId('history-open').hidden = true
}

function showRoomName(room: string): void {
  document.title = `${room} · coedit`
  byId('room-name').textContent = room
}

/** The document, synced over the stock provider (opted into coedit's "persisted" acks, its messages counted for them). */
function openSession(room: string, token: string | undefined): Session {
  const doc = new Y.Doc()
  const ytext = doc.getText(DEFAULT_TEXT_NAME)
  const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`
  const provider = new WebsocketProvider(wsBase, encodeURIComponent(room), doc, {
    params: { [COEDIT_OPT_IN_PARAM]: String(COEDIT_PROTOCOL_VERSION), ...(token ? { token } : {}) },
    WebSocketPolyfill: countingWebSocket(WebSocket),
  })
  return { room, token, doc, ytext, provider, idb: openOfflineCopy(room, doc) }
}

function openOfflineCopy(room: string, doc: Y.Doc): IndexeddbPersistence | undefined {
  try {
    return new IndexeddbPersistence(`coedit:${room}`, doc)
  } catch {
    // No IndexedDB (some private modes): the editor works, just not across reloads offline.
    return undefined
  }
}

/** The status line: the connection and whether edits are stored, redrawn whenever either changes. */
function wireStatusLine({ provider, room }: Session): SaveStatus {
  const status = new SaveStatus(provider, room)
  const connectionEl = byId('connection')
  const savedEl = byId('save-status')
  const show = (): void => {
    connectionEl.dataset['state'] = status.connection
    connectionEl.textContent = status.connection === 'closed'
      ? `${CONNECTION_TEXT.closed}: ${status.closedReason} — reload to try again`
      : CONNECTION_TEXT[status.connection]
    savedEl.dataset['state'] = status.saved
    savedEl.textContent = SAVED_TEXT[status.saved]
  }
  status.onChange(show)
  show()
  provider.on('connection-close', () => status.update())
  return status
}

/** Read-only from the start with a read token, or as soon as the server refuses a write. */
function wireReadOnly({ provider, token }: Session, textarea: HTMLTextAreaElement, status: SaveStatus): void {
  const readOnly = (): void => {
    textarea.readOnly = true
    textarea.setAttribute('aria-readonly', 'true')
    status.setReadOnly()
  }
  if (token && accessOf(token) === 'read') readOnly()
  // The server's "permission denied" (a read-only token that wrote anyway): shown, not just logged.
  provider.messageHandlers[MESSAGE_AUTH] = (_encoder, decoder) => {
    if (decoding.readVarUint(decoder) === AUTH_PERMISSION_DENIED) readOnly()
  }
}

/** The text area bound to the Y.Text; this page's own edits tell the status line there is something to save. */
function bindEditor({ doc, ytext, provider, idb }: Session, textarea: HTMLTextAreaElement, status: SaveStatus): TextareaBinding {
  const binding = new TextareaBinding(ytext, textarea)
  // The provider registered its update listener first, so a local edit is already sent (or not, offline).
  doc.on('update', (_update: Uint8Array, origin: unknown) => {
    if (origin !== provider && origin !== idb) status.localEdit()
  })
  return binding
}

/** Who is here and where their carets are; an edit that moves this user's caret publishes it again. */
function wirePresence({ provider, ytext }: Session, textarea: HTMLTextAreaElement, binding: TextareaBinding): { user: User; presence: Presence } {
  const user = loadUser()
  const presence = new Presence(provider.awareness, ytext, textarea, byId('people'), byId('carets'), user)
  binding.onChange = () => presence.textChanged()
  return { user, presence }
}

/** The name field: a rename is live for the others and remembered here. */
function wireNameField(user: User, presence: Presence): void {
  const nameInput = byId<HTMLInputElement>('name')
  nameInput.maxLength = MAX_NAME_LENGTH
  nameInput.value = user.name
  nameInput.addEventListener('input', () => {
    const name = nameInput.value.trim()
    if (!name) return
    user.name = name
    saveName(name)
    presence.setUser({ ...user })
  })
  // Leaving the field empty keeps the last name rather than showing a blank one.
  nameInput.addEventListener('change', () => {
    if (!nameInput.value.trim()) nameInput.value = user.name
  })
}

function wireShareButton(): void {
  const share = byId<HTMLButtonElement>('share')
  share.addEventListener('click', () => {
    const done = (text: string): void => {
      share.textContent = text
      setTimeout(() => { share.textContent = 'Copy link' }, 2000)
    }
    navigator.clipboard?.writeText(location.href).then(() => done('Link copied'), () => done('Copy the address bar'))
      ?? done('Copy the address bar')
  })
}

function historyPanel({ room, token, ytext }: Session): HistoryPanel {
  return new HistoryPanel({
    toggle: byId('history-open'), panel: byId('history'), close: byId('history-close'), status: byId('history-status'),
    list: byId('history-list'), more: byId('history-more'), exact: byId('history-exact'), view: byId('history-view'),
    viewTitle: byId('history-view-title'), showChanges: byId('history-show-changes'), legend: byId('history-legend'),
    preview: byId('history-preview'), note: byId('history-note'), restore: byId('history-restore'),
  }, new HistoryClient(room, token), () => ytext.toString())
}

/** A closed tab leaves the presence list at once, not after the awareness timeout; a tab restored from the back/forward cache comes back. */
function leaveOnPageHide(provider: WebsocketProvider, user: User): void {
  window.addEventListener('pagehide', () => provider.awareness.setLocalState(null))
  window.addEventListener('pageshow', (e) => {
    if (e.persisted) provider.awareness.setLocalState({ user: { ...user }, cursor: null })
  })
}

/** For tests and the curious: the live objects, and a way to wait for IndexedDB writes. */
function exposeOnWindow({ doc, ytext, provider, idb }: Session, binding: TextareaBinding, status: SaveStatus, history: HistoryPanel): void {
  Object.assign(window, {
    coedit: {
      doc, ytext, provider, binding, status, history,
      /** Resolves once every update so far is written to IndexedDB (transactions run in order). */
      idbFlushed: () => new Promise<void>((resolve) => {
        const db = idb?.db
        if (!db) return resolve()
        const tx = db.transaction(['updates'], 'readonly')
        tx.oncomplete = () => resolve()
        tx.onerror = () => resolve()
      }),
    },
  })
}

/** The page, part by part; all of it is wired synchronously, before the provider's socket can deliver a message. */
function start(): void {
  const room = roomFromPath()
  const textarea = byId<HTMLTextAreaElement>('editor')
  if (room === null) {
    showNoRoom(textarea)
    return
  }
  showRoomName(room)
  const session = openSession(room, tokenFromFragment(location.hash))
  const status = wireStatusLine(session)
  wireReadOnly(session, textarea, status)
  const binding = bindEditor(session, textarea, status)
  const { user, presence } = wirePresence(session, textarea, binding)
  wireNameField(user, presence)
  wireShareButton()
  const history = historyPanel(session)
  leaveOnPageHide(session.provider, user)
  exposeOnWindow(session, binding, status, history)
}

start()
