/**
 * Draws remote carets and selections over a <textarea> with a mirror: a div laid out
 * exactly like the text area's content (same font, padding, width, wrapping) holding the
 * same text in transparent ink, with coloured spans where selections are and zero-width
 * caret markers with name labels. Scrolling moves the mirror, not the page.
 *
 * Only the text up to the end of the line holding the last remote position is mirrored:
 * what follows cannot move any caret, and a 1 MB document should not be laid out twice.
 */

export interface RemoteCursor {
  id: number
  name: string
  color: string
  anchor: number
  head: number
}

const COPIED_STYLES = [
  'fontFamily', 'fontSize', 'fontWeight', 'fontStyle', 'fontVariant', 'fontStretch', 'lineHeight', 'letterSpacing',
  'wordSpacing', 'textIndent', 'textTransform', 'tabSize', 'whiteSpace', 'overflowWrap', 'wordBreak',
  'paddingTop', 'paddingRight', 'paddingBottom', 'paddingLeft', 'direction', 'textAlign',
] as const

type Boundary = { pos: number; kind: 'start' | 'end' | 'caret'; cursor: RemoteCursor }

export class CaretOverlay {
  private readonly textarea: HTMLTextAreaElement
  private readonly root: HTMLElement
  private readonly inner: HTMLElement

  constructor(textarea: HTMLTextAreaElement, root: HTMLElement) {
    this.textarea = textarea
    this.root = root
    this.inner = document.createElement('div')
    this.inner.className = 'carets-inner'
    root.replaceChildren(this.inner)
    root.setAttribute('aria-hidden', 'true')
  }

  /** Matches the overlay box and the mirror's typography to the text area. */
  private syncLayout(): void {
    const ta = this.textarea
    const cs = getComputedStyle(ta)
    const box = this.root.style
    box.left = `${ta.offsetLeft + ta.clientLeft}px`
    box.top = `${ta.offsetTop + ta.clientTop}px`
    box.width = `${ta.clientWidth}px`
    box.height = `${ta.clientHeight}px`
    const inner = this.inner.style
    for (const prop of COPIED_STYLES) inner[prop] = cs[prop]
    // The text area's width minus its scrollbar is the width its lines wrap to.
    inner.width = `${ta.clientWidth}px`
    if (cs.whiteSpace === 'normal') inner.whiteSpace = 'pre-wrap'
  }

  scroll(): void {
    this.inner.style.transform = `translate(${-this.textarea.scrollLeft}px, ${-this.textarea.scrollTop}px)`
  }

  render(cursors: readonly RemoteCursor[], text: () => string): void {
    if (cursors.length === 0) {
      this.inner.replaceChildren()
      return
    }
    const value = text()
    this.syncLayout()
    const boundaries: Boundary[] = []
    let last = 0
    for (const c of cursors) {
      const anchor = Math.min(c.anchor, value.length)
      const head = Math.min(c.head, value.length)
      const from = Math.min(anchor, head)
      const to = Math.max(anchor, head)
      if (to > from) {
        boundaries.push({ pos: from, kind: 'start', cursor: c }, { pos: to, kind: 'end', cursor: c })
      }
      boundaries.push({ pos: head, kind: 'caret', cursor: c })
      last = Math.max(last, to)
    }
    // Ends before starts before carets at one position, so spans never nest wrongly.
    const order = { end: 0, start: 1, caret: 2 }
    boundaries.sort((a, b) => a.pos - b.pos || order[a.kind] - order[b.kind])
    const lineEnd = value.indexOf('\n', last)
    const stop = lineEnd === -1 ? value.length : lineEnd

    const nodes: Node[] = []
    const open: RemoteCursor[] = []
    let pos = 0
    const emitText = (to: number): void => {
      if (to <= pos) return
      const chunk = value.slice(pos, to)
      pos = to
      const top = open[open.length - 1]
      if (!top) {
        nodes.push(document.createTextNode(chunk))
        return
      }
      const span = document.createElement('span')
      span.className = 'remote-selection'
      span.style.backgroundColor = `${top.color}33`
      span.textContent = chunk
      nodes.push(span)
    }
    for (const b of boundaries) {
      emitText(b.pos)
      if (b.kind === 'start') open.push(b.cursor)
      else if (b.kind === 'end') open.splice(open.indexOf(b.cursor), 1)
      else nodes.push(this.caret(b.cursor))
    }
    emitText(stop)
    // A trailing newline needs something after it to get its line.
    nodes.push(document.createTextNode('\u200b'))
    this.inner.replaceChildren(...nodes)
    this.scroll()
    // Labels above the caret would be cut off on the first visible line: put those below.
    for (const el of this.inner.querySelectorAll<HTMLElement>('.remote-caret')) {
      el.classList.toggle('label-below', el.offsetTop - this.textarea.scrollTop < 18)
    }
  }

  private caret(c: RemoteCursor): HTMLElement {
    const caret = document.createElement('span')
    caret.className = 'remote-caret'
    caret.dataset['name'] = c.name
    caret.dataset['clientId'] = String(c.id)
    caret.style.borderColor = c.color
    // A word joiner gives the inline box a line height without a break opportunity.
    caret.append(document.createTextNode('\u2060'))
    const label = document.createElement('span')
    label.className = 'remote-caret-label'
    label.style.backgroundColor = c.color
    label.textContent = c.name
    caret.append(label)
    return caret
  }

  destroy(): void {
    this.root.replaceChildren()
  }
}
