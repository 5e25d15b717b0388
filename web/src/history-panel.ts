/**
 * The history panel: the room's moments newest first (editing bursts with who and how
 * many changes, and saved versions), each with a relative time; one selected shows the
 * text as it was, read-only, with what changed since marked; "Restore this version" asks
 * the server to revert to it (a new change everyone sees). Only a page with write access
 * (the server says so: `canRestore`) gets the button; the server refuses a reader anyway.
 *
 * Keyboard: the History button opens it and focus moves in; the moments are a listbox
 * (one Tab stop; arrows, Home, End move; Enter or Space selects); Escape closes it and
 * gives focus back to the button.
 */
import { changesSince, type Changes } from './changes.js'
import { HistoryError, type HistoryClient, type Moment } from './history-client.js'

export interface PanelElements {
  toggle: HTMLButtonElement
  panel: HTMLElement
  close: HTMLButtonElement
  status: HTMLElement
  list: HTMLElement
  more: HTMLButtonElement
  exact: HTMLElement
  view: HTMLElement
  viewTitle: HTMLElement
  showChanges: HTMLInputElement
  legend: HTMLElement
  preview: HTMLElement
  note: HTMLElement
  restore: HTMLButtonElement
}

/** Relative times are redrawn this often while the panel is open. */
const RELABEL_MS = 20_000
/** Users named in one moment's line; more are counted. */
const MAX_NAMES = 3

const relativeFormat = new Intl.RelativeTimeFormat('en', { numeric: 'auto' })
const UNITS: Array<[Intl.RelativeTimeFormatUnit, number]> = [['second', 60], ['minute', 60], ['hour', 24], ['day', 7]]

/** "5 seconds ago", "3 minutes ago", "yesterday"; past a week, the date. */
export function relativeTime(at: number, now: number): string {
  let value = Math.max(0, Math.round((now - at) / 1000))
  for (const [unit, per] of UNITS) {
    if (value < per) return relativeFormat.format(-value, unit)
    value = Math.round(value / per)
  }
  return new Date(at).toLocaleDateString()
}

function names(users: readonly string[]): string {
  if (users.length <= MAX_NAMES) return users.join(', ')
  return `${users.slice(0, MAX_NAMES).join(', ')} and ${users.length - MAX_NAMES} more`
}

function titleOf(m: Moment): string {
  if (m.kind === 'version') return m.pinned ? `Before a restore (version ${m.id})` : `Saved version ${m.id}`
  return m.users.length > 0 ? `Edits by ${names(m.users)}` : 'Edits'
}

function detailOf(m: Moment): string {
  if (m.kind === 'version') return 'whole document'
  return m.updates === 1 ? '1 change' : `${m.updates} changes`
}

const ERROR_TEXT: Record<string, string> = {
  READ_ONLY: 'Your link is read-only: restoring needs write access.',
  OFFLINE: 'The server cannot be reached: try again once connected.',
  TOKEN_EXPIRED: 'Your access has expired: reload with a new link.',
}

function explain(err: unknown): string {
  if (err instanceof HistoryError) return ERROR_TEXT[err.code] ?? `${err.message} (${err.code})`
  return String(err)
}

export class HistoryPanel {
  private moments: Moment[] = []
  private next: string | undefined
  private canRestore = false
  /** Server clock minus this page's: relative times count from the server's now. */
  private skew = 0
  private selected: Moment | undefined
  private shown: { then: string; changes: Changes } | undefined
  private timer: ReturnType<typeof setInterval> | undefined
  /** Answers to an older request than the latest of their kind are dropped. */
  private listRequest = 0
  private textRequest = 0

  constructor(private readonly el: PanelElements, private readonly client: HistoryClient, private readonly currentText: () => string) {
    el.toggle.addEventListener('click', () => (this.isOpen ? this.close() : this.open()))
    el.close.addEventListener('click', () => this.close())
    el.more.addEventListener('click', () => void this.load(true))
    el.restore.addEventListener('click', () => void this.restore())
    el.showChanges.addEventListener('change', () => this.renderPreview())
    // Escape closes it wherever focus is (focus left on a button that went away is on the body).
    document.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape' || !this.isOpen || e.isComposing || e.defaultPrevented) return
      e.preventDefault()
      this.close()
    })
    el.list.addEventListener('keydown', (e) => this.onListKey(e))
  }

  get isOpen(): boolean {
    return !this.el.panel.hidden
  }

  open(): void {
    this.el.panel.hidden = false
    this.el.toggle.setAttribute('aria-expanded', 'true')
    document.body.classList.add('history-open')
    this.el.close.focus()
    this.timer = setInterval(() => this.relabel(), RELABEL_MS)
    void this.load(false)
  }

  close(): void {
    const focus = document.activeElement
    const hadFocus = !focus || focus === document.body || this.el.panel.contains(focus)
    this.el.panel.hidden = true
    this.el.toggle.setAttribute('aria-expanded', 'false')
    document.body.classList.remove('history-open')
    clearInterval(this.timer)
    // Back to the button, unless focus is elsewhere already (typing in the editor).
    if (hadFocus) this.el.toggle.focus()
  }

  /** Not `disabled`: a disabled button loses focus, and a keyboard user's place with it. */
  private setRestoreEnabled(enabled: boolean): void {
    this.el.restore.setAttribute('aria-disabled', String(!enabled))
  }

  private serverNow(): number {
    return Date.now() + this.skew
  }

  /** The first page again (`more`: the next older page, appended). */
  private async load(more: boolean): Promise<void> {
    const request = ++this.listRequest
    this.el.status.textContent = 'Loading…'
    try {
      const listing = await this.client.list(more ? this.next : undefined)
      if (request !== this.listRequest) return
      this.skew = listing.now - Date.now()
      this.canRestore = listing.canRestore
      this.moments = more ? [...this.moments, ...listing.moments] : listing.moments
      this.next = listing.next
      this.el.status.textContent = this.moments.length === 0 ? 'Nothing has been written in this room yet.' : ''
      this.el.exact.textContent = listing.exactSince === undefined
        ? 'Every change since the room began is kept.'
        : `Every change since ${new Date(listing.exactSince).toLocaleString()} is kept; before that, saved versions only.`
      this.renderList()
    } catch (err) {
      if (request === this.listRequest) this.el.status.textContent = `History is not available: ${explain(err)}`
    }
  }

  private renderList(): void {
    const { list, more } = this.el
    const focusedIndex = this.optionIndex(document.activeElement)
    list.replaceChildren()
    const now = this.serverNow()
    const current = this.selected ? this.moments.findIndex((m) => m.t === this.selected!.t && m.kind === this.selected!.kind) : -1
    this.moments.forEach((m, i) => {
      const li = document.createElement('li')
      li.id = `history-moment-${i}`
      li.className = 'moment'
      li.setAttribute('role', 'option')
      li.setAttribute('aria-selected', String(i === current))
      li.tabIndex = i === (current >= 0 ? current : 0) ? 0 : -1
      li.dataset['kind'] = m.kind
      const title = document.createElement('span')
      title.className = 'moment-title'
      title.textContent = titleOf(m)
      const time = document.createElement('time')
      time.dateTime = new Date(m.at).toISOString()
      time.title = new Date(m.at).toLocaleString()
      time.dataset['at'] = String(m.at)
      time.textContent = relativeTime(m.at, now)
      const detail = document.createElement('span')
      detail.className = 'moment-detail'
      detail.append(time, ` · ${detailOf(m)}`)
      li.append(title, detail)
      li.addEventListener('click', () => void this.select(i))
      list.append(li)
    })
    more.hidden = this.next === undefined
    if (focusedIndex !== undefined) this.option(Math.min(focusedIndex, this.moments.length - 1))?.focus()
  }

  private option(i: number): HTMLElement | undefined {
    return this.el.list.children[i] as HTMLElement | undefined
  }

  private optionIndex(el: Element | null): number | undefined {
    if (!el || el.parentElement !== this.el.list) return undefined
    return Array.prototype.indexOf.call(this.el.list.children, el) as number
  }

  private onListKey(e: KeyboardEvent): void {
    const i = this.optionIndex(document.activeElement)
    if (i === undefined) return
    const last = this.moments.length - 1
    const to = e.key === 'ArrowDown' ? Math.min(last, i + 1) : e.key === 'ArrowUp' ? Math.max(0, i - 1)
      : e.key === 'Home' ? 0 : e.key === 'End' ? last : undefined
    if (to !== undefined) {
      e.preventDefault()
      for (const li of this.el.list.children) (li as HTMLElement).tabIndex = -1
      const target = this.option(to)!
      target.tabIndex = 0
      target.focus()
      return
    }
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault()
      void this.select(i)
    }
  }

  private relabel(): void {
    const now = this.serverNow()
    for (const time of this.el.panel.querySelectorAll<HTMLTimeElement>('time[data-at]')) {
      time.textContent = relativeTime(Number(time.dataset['at']), now)
    }
  }

  private async select(i: number): Promise<void> {
    const m = this.moments[i]
    if (!m) return
    const request = ++this.textRequest
    this.selected = m
    for (const [k, li] of [...this.el.list.children].entries()) {
      li.setAttribute('aria-selected', String(k === i));
      (li as HTMLElement).tabIndex = k === i ? 0 : -1
    }
    const { view, viewTitle, preview, note, restore } = this.el
    view.hidden = false
    this.el.panel.dataset['selected'] = ''
    viewTitle.textContent = `${titleOf(m)}, ${relativeTime(m.at, this.serverNow())}`
    viewTitle.title = new Date(m.at).toLocaleString()
    restore.hidden = !this.canRestore
    this.setRestoreEnabled(false)
    note.textContent = ''
    this.shown = undefined
    preview.replaceChildren('Loading…')
    try {
      const at = await this.client.textAt(m.t)
      if (request !== this.textRequest) return
      this.shown = { then: at.text, changes: changesSince(at.text, this.currentText()) }
      this.setRestoreEnabled(true)
    } catch (err) {
      if (request !== this.textRequest) return
      preview.replaceChildren()
      note.textContent = `This moment cannot be shown: ${explain(err)}`
      return
    }
    this.renderPreview()
  }

  /** The text as it was; with "show changes", what is gone since marked and what was added since struck through. */
  private renderPreview(): void {
    const shown = this.shown
    if (!shown) return
    const { preview, note, legend, showChanges } = this.el
    const { changes } = shown
    const highlight = showChanges.checked && changes.ok
    preview.replaceChildren()
    if (highlight) {
      for (const s of changes.segments) {
        if (s.kind === 'same') {
          preview.append(s.text)
          continue
        }
        const mark = document.createElement(s.kind === 'gone' ? 'mark' : 'span')
        mark.className = s.kind === 'gone' ? 'since-gone' : 'since-added'
        mark.title = s.kind === 'gone' ? 'changed or removed since' : 'added since (not in this version)'
        mark.textContent = s.text
        preview.append(mark)
      }
    } else {
      preview.append(shown.then)
    }
    const differs = changes.ok ? changes.segments.some((s) => s.kind !== 'same') : true
    legend.hidden = !highlight || !differs
    note.textContent = !changes.ok
      ? `Too many changes to highlight here (${changes.changed.toLocaleString()} characters differ): the text is shown as it was.`
      : differs ? '' : 'The text now is the same as this version.'
  }

  private async restore(): Promise<void> {
    const m = this.selected
    const { restore, note } = this.el
    if (!m || restore.getAttribute('aria-disabled') === 'true') return
    this.setRestoreEnabled(false)
    note.textContent = 'Restoring…'
    try {
      await this.client.restore(m.t)
      note.textContent = 'Restored: everyone sees this version now. The text before the restore is kept in the history.'
      await this.load(false)
    } catch (err) {
      note.textContent = `Not restored: ${explain(err)}`
    } finally {
      this.setRestoreEnabled(true)
    }
  }
}
