/**
 * Presence: publishes this user's name, colour and selection (as Y.RelativePositions, so
 * they survive concurrent edits) in the awareness state, lists who is in the room, and
 * draws the others' carets and selections over the text area.
 *
 * Awareness state: { user: { name, color }, cursor: { anchor, head } | null }, where
 * anchor and head are `Y.relativePositionToJSON` of positions in the shared Y.Text.
 */
import * as Y from 'yjs'
import type { Awareness } from 'y-protocols/awareness'
import { CaretOverlay, type RemoteCursor } from './overlay.js'
import type { User } from './identity.js'

interface PresenceState {
  user?: { name?: unknown; color?: unknown }
  cursor?: { anchor?: unknown; head?: unknown } | null
}

const COLOR = /^#[0-9a-fA-F]{6}$/
const FALLBACK_COLOR = '#6b7280'

export class Presence {
  private readonly awareness: Awareness
  private readonly ytext: Y.Text
  private readonly textarea: HTMLTextAreaElement
  private readonly list: HTMLElement
  private readonly overlay: CaretOverlay
  private lastCursor = ''
  private publishQueued = false
  private renderQueued = false
  private readonly cleanups: Array<() => void> = []

  constructor(awareness: Awareness, ytext: Y.Text, textarea: HTMLTextAreaElement, list: HTMLElement, overlayRoot: HTMLElement, user: User) {
    this.awareness = awareness
    this.ytext = ytext
    this.textarea = textarea
    this.list = list
    this.overlay = new CaretOverlay(textarea, overlayRoot)
    awareness.setLocalStateField('user', user)
    awareness.setLocalStateField('cursor', null)

    const onAwareness = (): void => this.scheduleRender()
    awareness.on('change', onAwareness)
    this.cleanups.push(() => awareness.off('change', onAwareness))
    const onText = (): void => this.scheduleRender()
    ytext.observe(onText)
    this.cleanups.push(() => ytext.unobserve(onText))

    const publish = (): void => this.schedulePublish()
    for (const type of ['select', 'keyup', 'mouseup', 'focus', 'input', 'touchend']) {
      textarea.addEventListener(type, publish)
      this.cleanups.push(() => textarea.removeEventListener(type, publish))
    }
    document.addEventListener('selectionchange', publish)
    this.cleanups.push(() => document.removeEventListener('selectionchange', publish))
    const onScroll = (): void => this.overlay.scroll()
    textarea.addEventListener('scroll', onScroll, { passive: true })
    this.cleanups.push(() => textarea.removeEventListener('scroll', onScroll))
    const resize = new ResizeObserver(() => this.scheduleRender())
    resize.observe(textarea)
    this.cleanups.push(() => resize.disconnect())
    this.render()
  }

  setUser(user: User): void {
    this.awareness.setLocalStateField('user', user)
  }

  /** The binding changed the text area (local or remote edit): the caret may have moved. */
  textChanged(): void {
    this.schedulePublish()
  }

  private schedulePublish(): void {
    if (this.publishQueued) return
    this.publishQueued = true
    requestAnimationFrame(() => {
      this.publishQueued = false
      this.publishCursor()
    })
  }

  private publishCursor(): void {
    const ta = this.textarea
    const backward = ta.selectionDirection === 'backward'
    const anchor = backward ? ta.selectionEnd : ta.selectionStart
    const head = backward ? ta.selectionStart : ta.selectionEnd
    const cursor = {
      anchor: Y.relativePositionToJSON(Y.createRelativePositionFromTypeIndex(this.ytext, anchor)),
      head: Y.relativePositionToJSON(Y.createRelativePositionFromTypeIndex(this.ytext, head)),
    }
    const json = JSON.stringify(cursor)
    if (json === this.lastCursor) return
    this.lastCursor = json
    this.awareness.setLocalStateField('cursor', cursor)
  }

  private scheduleRender(): void {
    if (this.renderQueued) return
    this.renderQueued = true
    requestAnimationFrame(() => {
      this.renderQueued = false
      this.render()
    })
  }

  private toIndex(json: unknown): number | null {
    if (!json || typeof json !== 'object') return null
    try {
      const abs = Y.createAbsolutePositionFromRelativePosition(Y.createRelativePositionFromJSON(json), this.ytext.doc!)
      return abs && abs.type === this.ytext ? abs.index : null
    } catch {
      return null
    }
  }

  private render(): void {
    const states = this.awareness.getStates() as Map<number, PresenceState>
    const self = this.awareness.clientID
    const people: Array<{ id: number; name: string; color: string; self: boolean }> = []
    const cursors: RemoteCursor[] = []
    for (const [id, state] of states) {
      const name = typeof state.user?.name === 'string' && state.user.name.trim() ? state.user.name.trim().slice(0, 40) : 'Anonymous'
      const color = typeof state.user?.color === 'string' && COLOR.test(state.user.color) ? state.user.color : FALLBACK_COLOR
      people.push({ id, name, color, self: id === self })
      if (id === self || !state.cursor) continue
      const head = this.toIndex(state.cursor.head)
      if (head === null) continue
      const anchor = this.toIndex(state.cursor.anchor) ?? head
      cursors.push({ id, name, color, anchor, head })
    }
    people.sort((a, b) => Number(b.self) - Number(a.self) || a.name.localeCompare(b.name))
    this.renderList(people)
    this.overlay.render(cursors, () => this.textarea.value)
  }

  private renderList(people: Array<{ id: number; name: string; color: string; self: boolean }>): void {
    const items = people.map((p) => {
      const li = document.createElement('li')
      li.className = 'person'
      li.dataset['clientId'] = String(p.id)
      const dot = document.createElement('span')
      dot.className = 'dot'
      dot.style.background = p.color
      const name = document.createElement('span')
      name.className = 'person-name'
      name.textContent = p.name
      li.append(dot, name)
      if (p.self) {
        const you = document.createElement('span')
        you.className = 'you'
        you.textContent = ' (you)'
        li.append(you)
      }
      return li
    })
    this.list.replaceChildren(...items)
  }

  destroy(): void {
    for (const fn of this.cleanups) fn()
    this.overlay.destroy()
  }
}
