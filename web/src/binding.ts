/**
 * Binds a <textarea> to a Y.Text, both ways.
 *
 * Local input (typing, paste, cut, drop, autocorrect, IME) is diffed against what the
 * text area showed before and applied as one minimal splice in a transaction whose
 * origin is this binding, so the UndoManager tracks only this user's edits. Remote
 * changes are applied as splices (`setRangeText`), with the caret, the selection and
 * the scroll position carried through the delta.
 *
 * During an IME composition nothing is synced: the browser owns the text area's content
 * until `compositionend`. Remote changes arriving meanwhile are queued and applied after
 * the composed text, whose position is carried through them.
 */
import * as Y from 'yjs'
import { applyDelta, computeSplice, transformIndex, type DeltaOp } from './diff.js'

export class TextareaBinding {
  readonly undoManager: Y.UndoManager
  private readonly textarea: HTMLTextAreaElement
  private readonly ytext: Y.Text
  /** What the text area showed after the last sync: the base every local diff starts from. */
  private shadow: string
  private composing = false
  /** Remote deltas that arrived during a composition, in order, relative to `shadow`. */
  private queued: DeltaOp[][] = []
  private readonly listeners: Array<[EventTarget, string, EventListener]> = []
  /** Called after every change to the text area's content or selection. */
  onChange: () => void = () => {}

  constructor(ytext: Y.Text, textarea: HTMLTextAreaElement) {
    this.ytext = ytext
    this.textarea = textarea
    this.undoManager = new Y.UndoManager(ytext, { trackedOrigins: new Set([this]) })
    this.shadow = ytext.toString()
    textarea.value = this.shadow
    ytext.observe(this.onYText)
    this.listen(textarea, 'input', () => {
      if (!this.composing) this.syncLocal()
    })
    this.listen(textarea, 'compositionstart', () => {
      this.composing = true
    })
    this.listen(textarea, 'compositionend', () => {
      this.composing = false
      this.syncLocal()
    })
    this.listen(textarea, 'beforeinput', (e) => {
      const type = (e as InputEvent).inputType
      // The browser's own undo stack knows nothing of remote edits: use ours.
      if (type === 'historyUndo' || type === 'historyRedo') {
        e.preventDefault()
        this.undoRedo(type === 'historyRedo')
      }
    })
    this.listen(textarea, 'keydown', (e) => this.onKeydown(e as KeyboardEvent))
  }

  private listen(target: EventTarget, type: string, fn: EventListener): void {
    target.addEventListener(type, fn)
    this.listeners.push([target, type, fn])
  }

  private onKeydown(e: KeyboardEvent): void {
    if (!(e.ctrlKey || e.metaKey) || e.altKey) return
    const key = e.key.toLowerCase()
    if (key === 'z') {
      e.preventDefault()
      this.undoRedo(e.shiftKey)
    } else if (key === 'y' && !e.shiftKey && !e.metaKey) {
      e.preventDefault()
      this.undoRedo(true)
    }
  }

  private undoRedo(redo: boolean): void {
    if (this.composing) return
    this.syncLocal()
    if (redo) this.undoManager.redo()
    else this.undoManager.undo()
  }

  /** Applies whatever the user changed in the text area since the last sync. */
  syncLocal(): void {
    if (this.queued.length > 0) {
      this.flushQueued()
      return
    }
    const value = this.textarea.value
    const splice = computeSplice(this.shadow, value, this.textarea.selectionEnd)
    if (!splice) return
    this.shadow = value
    this.ytext.doc!.transact(() => {
      if (splice.remove > 0) this.ytext.delete(splice.index, splice.remove)
      if (splice.insert.length > 0) this.ytext.insert(splice.index, splice.insert)
    }, this)
    this.onChange()
  }

  /**
   * After a composition during which remote changes arrived: the local splice is relative
   * to the old shadow, so move it through the queued deltas, apply it, then show the result.
   */
  private flushQueued(): void {
    const deltas = this.queued
    this.queued = []
    const splice = computeSplice(this.shadow, this.textarea.value, this.textarea.selectionEnd)
    let caret: number | null = null
    if (splice) {
      let index = splice.index
      let end = splice.index + splice.remove
      for (const d of deltas) {
        index = transformIndex(index, d, true)
        end = Math.max(index, transformIndex(end, d))
      }
      this.ytext.doc!.transact(() => {
        if (end > index) this.ytext.delete(index, end - index)
        if (splice.insert.length > 0) this.ytext.insert(index, splice.insert)
      }, this)
      // A composition ends with the caret after the composed text.
      caret = index + splice.insert.length
    }
    this.render(this.ytext.toString(), caret)
    this.onChange()
  }

  private readonly onYText = (event: Y.YTextEvent, tr: Y.Transaction): void => {
    if (tr.origin === this) return
    const delta = event.delta as DeltaOp[]
    if (this.composing) {
      this.queued.push(delta)
      return
    }
    if (this.textarea.value !== this.shadow) {
      // Input the browser has not reported yet (rare): merge it like a composition, so nothing is lost.
      this.queued.push(delta)
      this.flushQueued()
      return
    }
    this.applyRemote(delta, tr.origin === this.undoManager)
  }

  private applyRemote(delta: DeltaOp[], ownUndo: boolean): void {
    const ta = this.textarea
    const { scrollTop, scrollLeft } = ta
    const focused = document.activeElement === ta
    const dir = ta.selectionDirection
    let start = ta.selectionStart
    let end = ta.selectionEnd
    const collapsed = start === end
    let pos = 0
    let lastChange = -1
    for (const op of delta) {
      if (op.retain !== undefined) {
        pos += op.retain
      } else if (op.delete !== undefined) {
        ta.setRangeText('', pos, pos + op.delete, 'preserve')
        lastChange = pos
      } else if (typeof op.insert === 'string') {
        ta.setRangeText(op.insert, pos, pos, 'preserve')
        pos += op.insert.length
        lastChange = pos
      }
    }
    this.shadow = applyDelta(this.shadow, delta)
    if (ta.value.length !== this.shadow.length) {
      // Should not happen; if it does, the document is the truth.
      ta.value = this.shadow = this.ytext.toString()
    }
    if (ownUndo && lastChange >= 0) {
      start = end = lastChange
    } else {
      start = transformIndex(start, delta, !collapsed)
      end = collapsed ? start : Math.max(start, transformIndex(end, delta))
    }
    ta.setSelectionRange(start, end, dir)
    if (!ownUndo || !focused) {
      ta.scrollTop = scrollTop
      ta.scrollLeft = scrollLeft
    }
    this.onChange()
  }

  /** Replaces the whole content (only after a composition that raced with remote edits). */
  private render(text: string, caret: number | null): void {
    const ta = this.textarea
    const { scrollTop, scrollLeft } = ta
    const sel = caret === null ? [ta.selectionStart, ta.selectionEnd] : [caret, caret]
    ta.value = this.shadow = text
    ta.setSelectionRange(Math.min(sel[0]!, text.length), Math.min(sel[1]!, text.length))
    ta.scrollTop = scrollTop
    ta.scrollLeft = scrollLeft
  }

  destroy(): void {
    this.ytext.unobserve(this.onYText)
    for (const [target, type, fn] of this.listeners) target.removeEventListener(type, fn)
    this.undoManager.destroy()
  }
}
