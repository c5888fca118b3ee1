// A confirmation before anything destructive: the native <dialog>, Cancel focused by default.

import {t} from './i18n.js';

export function confirmAction(message, actionLabel) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = message;
  document.getElementById('confirm-ok').textContent = actionLabel;
  dialog.querySelector('[value="cancel"]').textContent = t('cancel');
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), {once: true});
    dialog.returnValue = 'cancel';
    dialog.showModal();
  });
}
