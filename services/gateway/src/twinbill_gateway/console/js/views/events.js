// Events and notifications: not built yet; the page says so rather than showing an empty list.

import {fill, h} from '../dom.js';
import {t} from '../i18n.js';

export function render({view}) {
  fill(view, h('h1', {}, t('nav.events')),
    h('p', {class: 'notice-box', role: 'note', id: 'events-unavailable'}, t('events.unavailable')));
}
